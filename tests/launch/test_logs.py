"""Server logs: two runs started in the same second from one folder write two files.

Real processes and real files: two Python processes, each a pytest run's server log writer,
wait for the same instant (just after a second starts), name their log files and write their
server's lines into them. The name used to be ``<second>-<counter>-<engine>-<name>`` with a
counter per process, so both got one file, its lines mixed, and the stall and placement
readers (which read the server's file) saw the other server's output: a server that never
stalled recorded ``server_stall_fraction 0.875``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

from pytest_gpubench.launch.logs import log_file

WRITER = """
import sys, time
from pathlib import Path
from pytest_gpubench.launch.logs import ServerLog, log_file
from pytest_gpubench.launch.secrets import Redactor

folder, start, name = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
while time.time() < start:
    time.sleep(0.001)
log = ServerLog(log_file(folder, "llamacpp", "tiny-model", "process"), Redactor())
for i in range(200):
    log.write_line(f"{name} line {i}")
    time.sleep(0.001)
log.close()
print(log.path)
"""

ROOT = Path(__file__).resolve().parents[2]


def start_two_writers_in_one_second(folder: Path) -> list[Path]:
    """Both writers name their files in the same second (0.2 s into the next but one)."""
    start = math.floor(time.time()) + 2.2
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), str(start), name],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("server-one", "server-two")
    ]
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    return [Path(out.strip()) for out in outs]


def test_two_runs_in_one_second_get_a_log_file_each_with_only_their_lines(
    tmp_path: Path,
) -> None:
    for attempt in range(3):  # a machine so loaded that a writer missed the second: again
        folder = tmp_path / str(attempt)
        one, two = start_two_writers_in_one_second(folder)
        if one.name[:15] == two.name[:15]:  # both named in the same second
            break
    assert one.name[:15] == two.name[:15], (one, two)
    assert one != two
    assert sorted(folder.iterdir()) == sorted([one, two])
    for path, mine in ((one, "server-one"), (two, "server-two")):
        lines = path.read_text().splitlines()
        assert lines == [f"{mine} line {i}" for i in range(200)], path


def test_a_taken_name_is_never_appended_to(tmp_path: Path) -> None:
    """The file is created exclusively: one that exists (another writer's) is left alone."""
    first = log_file(tmp_path, "llamacpp", "m", "process")
    first.write_text("another server\n")
    second = log_file(tmp_path, "llamacpp", "m", "process")
    assert second != first and second.read_text() == ""
    assert first.read_text() == "another server\n"
    assert f"-{os.getpid()}-" in second.name
