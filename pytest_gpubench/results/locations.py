"""Where baselines live: the file of a device, a comparison target, pytest-benchmark's storage."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_gpubench.devices.profile import ProfileSet
from pytest_gpubench.devices.select import SelectedDevice, auto_profile
from pytest_gpubench.errors import GpubenchError
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


def per_gpu_storage(storage: str, profiles: ProfileSet, device: SelectedDevice) -> str:
    """pytest-benchmark's storage URI with the measured hardware appended.

    pytest-benchmark keys its folders by OS and Python only, so an H100 run and a 4090 run
    would land side by side and ``--benchmark-compare`` would compare them; the measured
    hardware (not the --device being judged against) names the subfolder.
    """
    slug = re.sub(r"[^a-z0-9+._-]+", "-", auto_profile(device.detection, profiles).name.lower())
    if storage.startswith("file://") or "://" not in storage:
        return storage.rstrip("/") + "/" + slug
    return storage  # elasticsearch and other backends keep their own keys
