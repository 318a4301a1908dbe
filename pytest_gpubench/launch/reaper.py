"""Nothing a run starts outlives it: a record on disk of what this pytest started, a watchdog
that stops all of it the moment pytest dies, and a sweep at the next start for what even the
watchdog could not stop.

What has to be caught. An engine is a process tree, not a process: vLLM's API server starts
``VLLM::EngineCore``, which starts ``VLLM::Worker`` (and multiprocessing's resource tracker);
SGLang starts scheduler processes; torchrun starts ranks in sessions of their own; a Docker
container is not a child of pytest at all. Every local server gets its own session
(``setsid``), so ``killpg`` reaches its whole tree while pytest runs. When pytest is SIGKILLed
no Python code runs, and measured here before this module existed: ``PR_SET_PDEATHSIG`` killed
vLLM's API server, but its EngineCore (600 MB) and Worker (1.7 GB) were re-parented to init and
still running a minute later.

Why a watchdog, and not the kernel alone:

- ``PR_SET_PDEATHSIG`` is set by the child on itself and fires when the *thread* that forked it
  exits; it is not inherited by grandchildren, and engines start theirs with code we do not
  control. It stays on every server as the fastest path for the server process itself.
- ``PR_SET_CHILD_SUBREAPER`` on pytest would re-parent orphaned grandchildren to pytest while
  pytest lives, but the moment pytest dies they go to init (or the next subreaper) all the same;
  and pytest would collect every zombie of every test's daemons. It does not help the one case
  that matters, so it is not used.
- A cgroup would hold the whole tree, but needs systemd or cgroup delegation, which containers
  and CI machines often lack.

So each run that starts something gets one small watchdog process (stdlib and psutil only,
loaded by file path, ~15 MB): in a session of its own, so neither Ctrl-C nor a kill of
pytest's process group reaches it, it holds the read end of a pipe whose write end only pytest
holds. The pipe reads end-of-file the instant pytest exits, however it exits (and the watchdog
also checks every second that pytest's pid still has its start time, for a forked child that
kept the pipe open). Then it stops everything the record lists: every process of each recorded
session; every process whose environment carries the run's tag (``GPUBENCH_RUN=<run>/<key>``,
set on each server and torchrun, inherited by everything they start, so a rank that moved to
a session of its own and lost its parent the instant before pytest died is still found);
every descendant it noted (once a second it notes the pids and start times of each tree, for
a process started with a clean environment); and every recorded container (``docker rm -f``).
SIGTERM, 3 s, then SIGKILL.

The record (``$GPUBENCH_CACHE/runs/<pid>-<start>.json``) names pytest by pid *and* start time,
and each session by its leader's pid and start time, so a reused pid is never mistaken for
ours: a session's members must have started after its leader, and while any process is in a
session the kernel does not hand its id to a new process. A run that ends normally stops its
servers, empties the record and removes it. If the watchdog was killed too (``kill -9 -1``, an
OOM kill, a container restart), the next pytest run on the machine finds the record of a run
whose pytest is dead and does the same sweep; records from another boot or another pid
namespace are never used to kill processes. Either way the next run prints one line (after
the header, ``-q`` too) saying what was cleaned up.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from pytest_gpubench.launch.identity import (
    START_TOLERANCE_S,
    alive,
    machine,
    same_start,
    start_time,
)
from pytest_gpubench.settings import cache_root

GRACE_S = 3.0
SNAPSHOT_S = 1.0
#: set in the environment of every process a run starts: "<run id>/<entry>", inherited by all
#: its descendants, wherever they move (a new session, a new parent)
ENV_TAG = "GPUBENCH_RUN"
VERSION = 1
_SUFFIX = ".json"
_SEEN = ".seen"
_REAPED = ".reaped"

# identities of processes: launch/identity.py (re-exported here, where callers look)


def _scan(tags: bool = False) -> dict[int, tuple[int, int, float, str, str]]:
    """Every live process: pid -> (ppid, sid, start, name, the ``ENV_TAG`` it was started with
    or "" (read only when ``tags``))."""
    table = {}
    for proc in psutil.process_iter(["ppid", "create_time", "name", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE or info.get("create_time") is None:
            continue
        try:
            sid = os.getsid(proc.pid)
        except OSError:
            continue
        tag = ""
        if tags:
            with contextlib.suppress(psutil.Error, OSError):
                tag = proc.environ().get(ENV_TAG, "")
        began = round(info["create_time"], 2)
        table[proc.pid] = (info["ppid"], sid, began, info["name"] or "?", tag)
    return table


def _descendants(table: dict, roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _protected() -> set[int]:
    """This process and its ancestors: never signalled, whatever a record says."""
    pids, pid = {os.getpid()}, os.getpid()
    with contextlib.suppress(psutil.Error):
        for parent in psutil.Process(pid).parents():
            pids.add(parent.pid)
    return pids


def session_tree(
    leader: int, start: float, seen=(), table: dict | None = None, tag: str | None = None
) -> dict[int, tuple[float, str]]:
    """The live processes of a recorded session: its members (started after its leader), their
    descendants wherever they moved, the processes that carry its ``tag`` in their environment,
    and the recorded ``seen`` (pid, start) pairs still alive with that same start time.
    pid -> (start, name)."""
    table = _scan(tags=tag is not None) if table is None else table
    lead = table.get(leader)
    if lead is not None and not same_start(lead[2], start):
        members: set[int] = set()  # the pid is another process's now: the session is gone
    else:
        members = {
            pid
            for pid, (_, sid, began, *_) in table.items()
            if sid == leader and began >= start - START_TOLERANCE_S
        }
    for pid, began in seen:
        if pid in table and same_start(table[pid][2], began):
            members.add(pid)
    if tag:
        members |= {pid for pid, row in table.items() if row[4] == tag}
    members |= _descendants(table, members)
    members -= _protected()
    return {pid: (table[pid][2], table[pid][3]) for pid in members}


def terminate(tree: dict[int, tuple[float, str]], grace_s: float = GRACE_S) -> list[str]:
    """SIGTERM every process of ``tree`` (pid -> (start, name)), SIGKILL what is left after
    ``grace_s``; the names of the processes that were running."""
    procs = []
    for pid, (began, name) in tree.items():
        try:
            proc = psutil.Process(pid)
            if same_start(round(proc.create_time(), 2), began):
                procs.append((proc, name))
        except psutil.Error:
            continue
    for proc, _ in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, rest = psutil.wait_procs([p for p, _ in procs], timeout=grace_s)
    for proc in rest:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(rest, timeout=5)
    return [name for _, name in procs]


# ------------------------------------------------------------------ containers


def remove_container(ident: str) -> str | None:
    """``docker rm -f``: None if it was removed, "gone" if there was none, else the problem."""
    try:
        import docker  # the SDK where it is installed (it is for launcher='docker')

        try:
            docker.from_env(timeout=30).containers.get(ident).remove(force=True)
            return None
        except docker.errors.NotFound:
            return "gone"
        except Exception:
            pass
    except ImportError:
        pass
    cli = shutil.which("docker")
    if cli is None:
        return "no Docker SDK or docker command to remove it with"
    try:
        out = subprocess.run(
            [cli, "rm", "-f", ident], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker rm failed: {exc}"
    if out.returncode == 0:
        return None
    return "gone" if "No such container" in out.stderr else out.stderr.strip()[:200]


# ------------------------------------------------------------------ records on disk


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _side(record: Path, kind: str) -> Path:
    return record.with_name(record.name[: -len(_SUFFIX)] + kind + _SUFFIX)


def _is_record(path: Path) -> bool:
    name = path.name
    return (
        name.endswith(_SUFFIX)
        and not name.startswith(".")
        and not any(name.endswith(k + _SUFFIX) for k in (_SEEN, _REAPED))
    )


def reap(record: Path, grace_s: float = GRACE_S, *, processes: bool = True) -> list[str]:
    """Stop everything ``record`` lists and remove it; one phrase per thing that was running."""
    data = _load(record) or {}
    seen = _load(_side(record, _SEEN)) or {}
    run_id = record.name[: -len(_SUFFIX)]
    done = []
    table = _scan(tags=True) if processes else {}
    for key, entry in (data.get("entries") or {}).items():
        what = entry.get("what", key)
        if entry.get("kind") == "session" and processes:
            tree = session_tree(
                int(entry["pid"]), float(entry["start"]), [tuple(p) for p in seen.get(key, [])],
                table, f"{run_id}/{key}",
            )  # fmt: skip
            done += _stopped(what, terminate(tree, grace_s))
        elif entry.get("kind") == "container":
            problem = remove_container(str(entry["id"]))
            if problem is None:
                done.append(f"removed {what}")
            elif problem != "gone":
                done.append(f"could NOT remove {what} ({problem})")
    if processes:  # tagged by this run, under an entry that is no longer recorded
        strays = {
            pid: (row[2], row[3])
            for pid, row in table.items()
            if row[4].startswith(run_id + "/") and pid not in _protected()
        }
        done += _stopped("other processes it started", terminate(strays, grace_s))
    for path in (record, _side(record, _SEEN)):
        with contextlib.suppress(OSError):
            path.unlink()
    return done


def _stopped(what: str, names: list[str]) -> list[str]:
    if not names:
        return []
    counts = {n: names.count(n) for n in sorted(set(names))}
    listed = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())
    plural = "es" if len(names) > 1 else ""
    return [f"stopped {what} ({len(names)} process{plural}: {listed})"]


def _owner(data: dict) -> str:
    owner = data.get("pytest") or {}
    began = owner.get("start")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(began)) if began else "?"
    return f"pid {owner.get('pid', '?')}, started {when}"


def sweep(directory: Path) -> str | None:
    """At a run's start: stop what killed runs left (only runs whose pytest is dead) and report
    what their watchdogs already stopped; one line, or None when there was nothing."""
    try:
        paths = sorted(directory.iterdir())
    except OSError:
        return None
    here = machine()
    parts = []
    for path in paths:
        if path.name.endswith(_REAPED + _SUFFIX):
            report = _load(path) or {}
            with contextlib.suppress(OSError):
                path.unlink()
            if report.get("stopped"):
                parts.append(f"({_owner(report)}): its watchdog " + "; ".join(report["stopped"]))
            continue
        if not _is_record(path):
            continue
        data = _load(path)
        if data is None:
            continue  # being written, or not ours
        owner = data.get("pytest") or {}
        same_boot = data.get("boot") == here["boot"]
        if same_boot and data.get("pidns") != here["pidns"]:
            continue  # another pid namespace's run: its pids mean nothing here
        if same_boot and alive(int(owner.get("pid", 0)), float(owner.get("start", 0))):
            continue
        try:
            lock = open(path)  # noqa: SIM115 - closed below
        except OSError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its watchdog (or another run's sweep) is stopping it right now
            stopped = reap(path, processes=same_boot)
        if stopped:
            parts.append(f"({_owner(data)}): " + "; ".join(stopped))
    if not parts:
        return None
    return "gpubench: cleaned up after a killed pytest run " + " | ".join(parts)


class RunRecord:
    """What this process started, kept on disk for the watchdog and the next run's sweep.

    ``key = RUN.new_key()``, start the process with ``RUN.tag(key)`` in its environment, then
    ``RUN.add_session(pid, what, key)``; ``RUN.remove(key)`` once it is stopped. Thread-safe;
    nothing here raises: a record that cannot be written only loses the SIGKILL guarantee
    (``problem`` says why), never a server.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._owner = os.getpid()
        self._entries: dict[str, dict] = {}
        self._counter = 0
        self._run_id: str | None = None
        self._path: Path | None = None
        self._watchdog: subprocess.Popen | None = None
        self.problem: str | None = None

    def _mine(self) -> None:
        if os.getpid() != self._owner:  # a forked child keeps a record of its own
            self._reset()

    @property
    def directory(self) -> Path:
        if self._directory is None:
            return cache_root() / "runs"
        return self._directory

    @property
    def run_id(self) -> str:
        """This process as the record names it: "<pid>-<start time in 1/100 s>"."""
        if self._run_id is None or os.getpid() != self._owner:
            self._mine()
            me = os.getpid()
            self._run_id = f"{me}-{int((start_time(me) or 0.0) * 100)}"
        return self._run_id

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog is not None else None

    def new_key(self) -> str:
        with self._lock:
            self._mine()
            self._counter += 1
            return str(self._counter)

    def tag(self, key: str) -> dict[str, str]:
        """The environment entry that marks a process (and all it starts) as ``key``'s."""
        return {ENV_TAG: f"{self.run_id}/{key}"}

    def add_session(self, pid: int, what: str, key: str | None = None) -> str | None:
        """A process that is its session's leader (``setsid``): its whole session is ours."""
        began = start_time(pid)
        if began is None:
            return None  # already gone: nothing to clean
        return self._add({"kind": "session", "pid": pid, "start": began, "what": what}, key)

    def add_container(self, ident: str, name: str, what: str) -> str | None:
        return self._add({"kind": "container", "id": ident, "name": name, "what": what})

    def remove(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            if os.getpid() != self._owner or key not in self._entries:
                return
            del self._entries[key]
            self._save()

    def _add(self, entry: dict, key: str | None = None) -> str | None:
        key = key or self.new_key()
        with self._lock:
            self._mine()
            self._entries[key] = entry
            self._save()
            if self._watchdog is None and self._path is not None and self.problem is None:
                self._start_watchdog()
            return key

    def _save(self) -> None:
        try:
            if self._path is None:
                if not self._entries:
                    return
                directory = self.directory
                directory.mkdir(parents=True, exist_ok=True)
                self._path = directory / f"{self.run_id}{_SUFFIX}"
                self._head = {
                    "version": VERSION,
                    "pytest": {
                        "pid": os.getpid(),
                        "start": start_time(os.getpid()) or 0.0,
                        "argv": sys.argv[:8],
                        "cwd": os.getcwd(),
                    },
                    **machine(),
                }
            if self._entries:
                _write(self._path, {**self._head, "entries": self._entries})
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()
        except OSError as exc:
            self.problem = f"cannot write the run record in {self.directory}: {exc}"

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's pipe end (its watchdog must see pytest's exit,
        not this child's) and start afresh if this child records anything."""
        inherited = self._watchdog
        if inherited is not None and inherited.stdin is not None:
            with contextlib.suppress(OSError):
                inherited.stdin.close()
        self._lock = threading.Lock()
        self._reset()
        self._inherited = inherited  # not this process's child: never waited for here

    def _start_watchdog(self) -> None:
        me = os.getpid()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _BOOT, __file__, "watch", str(self._path),
                 str(me), repr(self._head["pytest"]["start"])],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,  # out of reach of Ctrl-C and of pytest's group
            )  # fmt: skip
        except OSError as exc:
            self.problem = f"cannot start the watchdog: {exc}"

    def close(self, wait_s: float = 5.0) -> None:
        """The run ends normally: what is still recorded (nothing, if every stop worked) is left
        to the watchdog, which stops it and removes the record once it sees the pipe close."""
        with self._lock:
            if os.getpid() != self._owner:
                return
            self._save()
            watchdog, self._watchdog = self._watchdog, None
            self._path = None if not self._entries else self._path
        if watchdog is None:
            return
        with contextlib.suppress(OSError):
            watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=wait_s)


# How the watchdog starts: this file loaded by path, so it imports neither the package (and
# its dependencies) nor a module that happens to sit in some working directory.
WATCHDOG_MODULE = "gpubench_reaper"  # in the watchdog's command line, to find it by
_BOOT = (
    f"import importlib.util as u, sys; s = u.spec_from_file_location('{WATCHDOG_MODULE}', "
    "sys.argv[1]); m = u.module_from_spec(s); sys.modules[s.name] = m; "
    "s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
)


def _snapshot(record: Path, seen: dict[str, set]) -> bool:
    """Note every live process of every recorded session; True if anything new was seen."""
    data = _load(record)
    if not data:
        return False
    table = _scan()
    changed = False
    for key, entry in (data.get("entries") or {}).items():
        if entry.get("kind") != "session":
            continue
        tree = session_tree(int(entry["pid"]), float(entry["start"]), seen.get(key, ()), table)
        now = {(pid, began) for pid, (began, _) in tree.items()}
        if now - seen.get(key, set()):
            changed = True
        seen[key] = now | {p for p in seen.get(key, set()) if p[0] in table}
    for key in set(seen) - set(data.get("entries") or {}):
        del seen[key]
    return changed


def watch(record: Path, owner: int, owner_start: float) -> int:
    """The watchdog: wait for pytest to die, then stop whatever its record still lists."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    seen: dict[str, set] = {}
    while True:
        ready, _, _ = select.select([0], [], [], SNAPSHOT_S)
        if ready and not os.read(0, 4096):
            break  # pytest has exited, however it exited
        if not alive(owner, owner_start):
            break
        if _snapshot(record, seen):
            with contextlib.suppress(OSError):
                _write(_side(record, _SEEN), {k: sorted(v) for k, v in seen.items()})
    data = _load(record)
    if not data or not data.get("entries"):
        with contextlib.suppress(OSError):
            _side(record, _SEEN).unlink()
        return 0
    with open(record) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stopped = reap(record)
    if stopped:
        report = {"pytest": data.get("pytest"), "stopped": stopped, "time": time.time()}
        with contextlib.suppress(OSError):
            _write(_side(record, _REAPED), report)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "watch":
        return watch(Path(argv[1]), int(argv[2]), float(argv[3]))
    print("usage: reaper.py watch RECORD PID START", file=sys.stderr)
    return 2


#: this process's record (created on the first thing it starts)
RUN = RunRecord()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUN._after_fork)
atexit.register(RUN.close)
# cleanup's stop_all must run before RUN.close (atexit runs last-registered first): cleanup is
# imported in every pytest run, this module only once something is started, so re-register it
_cleanup = sys.modules.get("pytest_gpubench.launch.cleanup")
if _cleanup is not None:
    _cleanup.stop_first_at_exit()
