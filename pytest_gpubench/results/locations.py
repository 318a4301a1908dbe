"""Where baselines live: the file of a device, a comparison target, pytest-benchmark's storage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pytest_gpubench.devices.profile import ProfileSet
from pytest_gpubench.devices.select import SelectedDevice, auto_profile
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.results.atomic import exclusive_lock, write_error, write_or_explain
from pytest_gpubench.results.baseline import Baseline, load
from pytest_gpubench.settings import Settings


def baseline_file(value: str | bool, settings: Settings, profiles: ProfileSet, device: str) -> Path:
    """True -> baselines/<device>.json; a profile name -> its file; anything else is a path."""
    if value is True:
        return settings.baselines_dir / f"{device}.json"
    text = str(value)
    if not text.endswith(".json") and text in profiles:
        return settings.baselines_dir / f"{profiles.get(text).name}.json"
    return Path(text).expanduser().resolve()


def measured_gpu(device: SelectedDevice) -> str:
    det = device.detection
    return det.gpus[0].name if det.gpus else "none (CPU)"


def find_comparison(name: str, settings: Settings) -> Baseline:
    """A path, else baselines/<name>.json (measured), else baselines/reference/<name>.json."""
    candidates = [
        Path(name).expanduser(),
        settings.baselines_dir / f"{name}.json",
        settings.baselines_dir / "reference" / f"{name}.json",
    ]
    for path in candidates:
        if path.suffix == ".json" and path.is_file():
            return load(path)
    raise GpubenchError(
        f"--gpubench-compare-to: no baseline or reference for {name!r}; looked for "
        + ", ".join(str(c) for c in candidates[1:])
        + " (give a device with a saved baseline or reference, or a JSON path)"
    )


def hardware_slug(profiles: ProfileSet, device: SelectedDevice) -> str:
    """The measured hardware (not the --device judged against) as a folder-name part."""
    return re.sub(r"[^a-z0-9+._-]+", "-", auto_profile(device.detection, profiles).name.lower())


class PerGpuMachineId:
    """pytest-benchmark's storage folder named by the measured hardware too.

    pytest-benchmark keys its folders by OS and Python only (``Linux-CPython-3.11-64bit``), so
    an H100 run and a 4090 run would land side by side and ``--benchmark-compare`` would
    compare them. Its folder name comes from ``pytest_benchmark.session.get_machine_id`` and
    no hook; ``install`` wraps that function for this run (``Linux-CPython-3.11-64bit-h100``)
    and ``restore`` puts it back. One folder level, as pytest-benchmark lays it out, so its
    own ``pytest-benchmark list`` and ``compare`` still find every run.
    """

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self._original = None

    def install(self) -> None:
        try:
            from pytest_benchmark import session
        except ImportError:  # pytest-benchmark is a dependency; a broken install loses only this
            return
        current = session.get_machine_id
        base = getattr(current, "unwrapped", current)  # a pytest run inside a pytest run
        self._original = current

        def machine_id() -> str:
            return f"{base()}-{self.slug}"

        machine_id.unwrapped = base  # type: ignore[attr-defined]
        session.get_machine_id = machine_id

    def restore(self) -> None:
        if self._original is not None:
            from pytest_benchmark import session

            session.get_machine_id = self._original
            self._original = None


def guard_benchmark_saves(config: Any) -> None:
    """Make pytest-benchmark's ``--benchmark-save``/``--benchmark-autosave`` safe between runs,
    and its ``--benchmark-json`` file whole or untouched (``_atomic_json``).

    Its file storage numbers a new file one past the highest there (``0002_...``) and then
    writes it: two runs finishing together pick the same number and one overwrites the other
    (or fails an assert). Wrapped for this run, the numbering and the write happen under an
    exclusive lock on the storage folder's lock file; the file is written atomically, and a
    disk error is one logged line naming the file, not a traceback ending the run before its
    summary (and not a half-written file that its ``--benchmark-compare`` would then skip).
    """
    session = getattr(config, "_benchmarksession", None)
    _atomic_json(session)
    storage = getattr(session, "storage", None)
    save = getattr(storage, "save", None)
    if not hasattr(storage, "_next_num") or getattr(save, "gpubench_locked", False):
        return  # not a file storage (elasticsearch), or already wrapped

    def locked_save(output_json: dict, name: str) -> None:
        from pytest_benchmark.utils import safe_dumps

        folder = storage.get("")  # the machine folder, created; files are numbered inside it
        try:
            with exclusive_lock(folder / "storage"):
                target = storage.get(f"{storage._next_num}_{name}.json")
                write_or_explain(target, safe_dumps(output_json, ensure_ascii=True, indent=4))
        except (GpubenchError, OSError) as exc:
            problem = exc if isinstance(exc, GpubenchError) else write_error(folder, exc)
            session.logger.warning(f"gpubench: benchmark data not saved: {problem}")
            return
        session.logger.info(f"Saved benchmark data in: {target}")

    locked_save.gpubench_locked = True  # type: ignore[attr-defined]
    storage.save = locked_save


def _atomic_json(session: Any) -> None:
    """pytest-benchmark writes ``--benchmark-json`` in place: a full disk left the previous
    file truncated and ended the run with a traceback. Written atomically instead, a disk
    error is one logged line naming the file, and the old file stays whole."""
    save_json = getattr(session, "save_json", None)
    if save_json is None or getattr(save_json, "gpubench_atomic", False):
        return

    def atomic_save_json(output_json: dict) -> None:
        from pytest_benchmark.utils import safe_dumps

        try:
            write_or_explain(
                Path(session.json), safe_dumps(output_json, ensure_ascii=True, indent=4)
            )
        except GpubenchError as exc:
            session.logger.warning(f"gpubench: benchmark JSON not written: {exc}")
            return
        session.logger.info(f"Wrote benchmark data in: {session.json}", purple=True)

    atomic_save_json.gpubench_atomic = True  # type: ignore[attr-defined]
    session.save_json = atomic_save_json
