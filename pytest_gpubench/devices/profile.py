"""Device profiles: loaded from data files, validated once, composed for multi-GPU hosts.

The figures live in ``profiles.toml`` (shipped) and optionally a user TOML file of the same
shape; this module only reads, checks and combines them, so a new GPU is a data change.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_LEAF_KEYS = {
    "display_name",
    "memory_gib",
    "unified",
    "bandwidth_gbs",
    "tflops",
    "compute_capability",
    "nvml_names",
    "source",
    "unconfirmed",
}
_COMPOSED_KEYS = {"display_name", "parts", "interconnect_gbs", "source", "unconfirmed"}
_REPEAT = re.compile(r"^(\d+)x(.+)$")


@dataclass(frozen=True)
class DeviceProfile:
    """What the plugin knows about one device (a GPU, a unified-memory box, or several GPUs).

    For a composed device (``parts`` non-empty) ``memory_gib`` is the total over its GPUs, which
    is what an engine that splits layers across GPUs can use; ``largest_gpu_gib`` is what an
    engine that needs one contiguous GPU can use.
    """

    name: str
    display_name: str
    memory_gib: float
    unified: bool
    bandwidth_gbs: float | None
    tflops: dict[str, float]
    compute_capability: str
    source: str
    nvml_names: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    parts: tuple[DeviceProfile, ...] = ()
    interconnect_gbs: float | None = None
    origin: str = "builtin"

    @property
    def gpu_count(self) -> int:
        return len(self.parts) if self.parts else (0 if self.name == "cpu" else 1)

    @property
    def largest_gpu_gib(self) -> float:
        return max(p.memory_gib for p in self.parts) if self.parts else self.memory_gib

    @property
    def marker_name(self) -> str:
        """The pytest marker for this profile; marker names must be identifiers.

        '-' and '+' become '_', and a leading count moves to the end: '2xh200' -> 'h200_x2'.
        """
        name = self.name
        repeat = _REPEAT.match(name)
        if repeat:
            name = f"{repeat.group(2)}_x{repeat.group(1)}"
        return re.sub(r"[^0-9a-zA-Z_]", "_", name)

    def with_memory(self, memory_gib: float) -> DeviceProfile:
        return replace(self, memory_gib=memory_gib)


@dataclass(frozen=True)
class ProfileSet:
    """All known profiles by name, with lookup that also composes 'a+b' and 'Nxa'."""

    profiles: dict[str, DeviceProfile] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str) -> DeviceProfile:
        key = name.strip().lower()
        if key in self.profiles:
            return self.profiles[key]
        if "+" in key:
            parts = [self.get(p) for p in key.split("+")]
            return compose(key, parts)
        repeat = _REPEAT.match(key)
        if repeat and int(repeat.group(1)) >= 1:
            part = self.get(repeat.group(2))
            return compose(key, [part] * int(repeat.group(1)))
        raise GpubenchError(unknown_device_message(name, self.names))

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except GpubenchError:
            return False
        return True


def unknown_device_message(name: str, known: list[str]) -> str:
    import difflib  # only for the error message: every pytest run loads this module

    close = difflib.get_close_matches(name.lower(), known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown device {name!r}.{hint} Known devices: {', '.join(known)}, auto; "
        "combine GPUs as 'rtx4090+rtx5070ti' or '2xh200', or add a profile in the TOML file "
        "named by the ini option gpubench_profiles."
    )


def compose(name: str, parts: list[DeviceProfile], **extra: Any) -> DeviceProfile:
    """One profile for several GPUs: memory adds up, bandwidth is the slowest part's.

    The slowest bandwidth is what bounds a layer-split decode where every GPU reads its share
    in turn at its own speed; the roofline module refines this per part.
    """
    leaves = [leaf for p in parts for leaf in (p.parts or (p,))]
    bandwidths = [p.bandwidth_gbs for p in leaves if p.bandwidth_gbs]
    common_dtypes = set.intersection(*(set(p.tflops) for p in leaves)) if leaves else set()
    return DeviceProfile(
        name=name,
        display_name=extra.get("display_name") or " + ".join(p.display_name for p in leaves),
        memory_gib=sum(p.memory_gib for p in leaves),
        unified=all(p.unified for p in leaves),
        bandwidth_gbs=min(bandwidths) if len(bandwidths) == len(leaves) else None,
        tflops={d: sum(p.tflops[d] for p in leaves) for d in sorted(common_dtypes)},
        compute_capability=",".join(sorted({p.compute_capability for p in leaves})),
        source=extra.get("source") or "composed from " + " + ".join(p.name for p in leaves),
        unconfirmed=tuple(extra.get("unconfirmed", ())),
        parts=tuple(leaves),
        interconnect_gbs=extra.get("interconnect_gbs"),
        origin=extra.get("origin", "composed"),
    )


def _read_toml(path: Path | None, text: str | None = None) -> dict[str, Any]:
    label = str(path) if path else "the built-in profiles"
    try:
        data = tomllib.loads(text if text is not None else path.read_text())  # type: ignore[union-attr]
    except FileNotFoundError as exc:
        raise GpubenchError(
            f"device profile file {label} does not exist; fix the ini option gpubench_profiles"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise GpubenchError(f"device profile file {label} is not valid TOML: {exc}") from exc
    except RecursionError:
        raise GpubenchError(
            f"device profile file {label} is not valid TOML: nested too deeply"
        ) from None
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        raise GpubenchError(f"{label}: expected tables named [profiles.NAME]")
    return profiles


def _check_keys(label: str, name: str, entry: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise GpubenchError(
            f"{label}: profile {name!r} has unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _number(label: str, name: str, key: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise GpubenchError(
            f"{label}: profile {name!r} field {key!r} must be a non-negative number, got {value!r}"
        )
    return float(value)


def _leaf(
    label: str, name: str, entry: dict[str, Any], base: DeviceProfile | None
) -> DeviceProfile:
    _check_keys(label, name, entry, _LEAF_KEYS)
    if base is None:
        missing = [k for k in ("memory_gib", "source") if k not in entry]
        if missing:
            raise GpubenchError(
                f"{label}: new profile {name!r} lacks required field(s) {', '.join(missing)}"
            )
    merged: dict[str, Any] = {}
    if base is not None:
        merged = {
            "display_name": base.display_name,
            "memory_gib": base.memory_gib,
            "unified": base.unified,
            "bandwidth_gbs": base.bandwidth_gbs,
            "tflops": dict(base.tflops),
            "compute_capability": base.compute_capability,
            "nvml_names": list(base.nvml_names),
            "source": base.source,
            "unconfirmed": list(base.unconfirmed),
        }
    merged.update(entry)
    tflops = merged.get("tflops", {}) or {}
    if not isinstance(tflops, dict):
        raise GpubenchError(f"{label}: profile {name!r} field 'tflops' must be a table")
    return DeviceProfile(
        name=name,
        display_name=str(merged.get("display_name", name)),
        memory_gib=_number(label, name, "memory_gib", merged["memory_gib"]) or 0.0,
        unified=bool(merged.get("unified", False)),
        bandwidth_gbs=_number(
            label, name, "bandwidth_gbs", merged.get("bandwidth_gbs"), optional=True
        ),
        tflops={str(k): _number(label, name, f"tflops.{k}", v) for k, v in tflops.items()},  # type: ignore[misc]
        compute_capability=str(merged.get("compute_capability", "")),
        source=str(merged["source"]),
        nvml_names=tuple(str(n) for n in merged.get("nvml_names", ())),
        unconfirmed=tuple(str(n) for n in merged.get("unconfirmed", ())),
        origin="builtin" if base is None and label == "the built-in profiles" else "user",
    )


def _merge(
    label: str, raw: dict[str, Any], known: dict[str, DeviceProfile]
) -> dict[str, DeviceProfile]:
    result = dict(known)
    composed: list[tuple[str, dict[str, Any]]] = []
    for raw_name, entry in raw.items():
        name = str(raw_name).lower()
        if not isinstance(entry, dict):
            raise GpubenchError(f"{label}: [profiles.{raw_name}] must be a table")
        if "parts" in entry:
            composed.append((name, entry))
            continue
        result[name] = _leaf(label, name, entry, result.get(name))
        if label != "the built-in profiles":
            result[name] = replace(result[name], origin=f"user ({label})")
    lookup = ProfileSet(result)
    for name, entry in composed:
        _check_keys(label, name, entry, _COMPOSED_KEYS)
        parts_raw = entry["parts"]
        if not isinstance(parts_raw, list) or not parts_raw:
            raise GpubenchError(f"{label}: profile {name!r} field 'parts' must be a list of names")
        parts = [lookup.get(str(p)) for p in parts_raw]
        origin = "builtin" if label == "the built-in profiles" else f"user ({label})"
        extra = {k: v for k, v in entry.items() if k != "parts"}
        result[name] = compose(name, parts, origin=origin, **extra)
    return result


@lru_cache(maxsize=1)
def builtin_profiles() -> ProfileSet:
    text = resources.files("pytest_gpubench.devices").joinpath("profiles.toml").read_text()
    return ProfileSet(_merge("the built-in profiles", _read_toml(None, text), {}))


def load_profiles(
    user_file: str | os.PathLike[str] | None = None,
    added: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> ProfileSet:
    """Built-in profiles, then ``added`` tables (plugins' ``pytest_gpubench_add_profiles``,
    each ``(label, {name: fields})``), then the user's TOML file: each adds profiles or
    overrides an existing one field by field, so the user has the last word."""
    profiles = builtin_profiles().profiles
    for label, table in added:
        if not isinstance(table, Mapping):
            raise GpubenchError(f"{label}: profiles must be a table of name -> fields")
        profiles = _merge(label, dict(table), profiles)
    if user_file:
        path = Path(user_file)
        profiles = _merge(str(path), _read_toml(path), profiles)
    return ProfileSet(profiles) if (added or user_file) else builtin_profiles()
