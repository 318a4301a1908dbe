"""Turn ``--device`` (a profile name or ``auto``) plus what NVML saw into the device a run uses."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pytest_gpubench.devices.detect import DetectedGpu, Detection
from pytest_gpubench.devices.profile import DeviceProfile, ProfileSet, compose


@dataclass(frozen=True)
class SelectedDevice:
    """The profile a run is judged against, how it was chosen, and what is really present."""

    profile: DeviceProfile
    requested: str  # what the user asked for: a name or "auto"
    chosen_by: str  # "--device", "GPUBENCH_DEVICE", "ini gpubench_device" or "default"
    detection: Detection
    mismatch: str = ""  # non-empty when a named profile disagrees with the hardware

    @property
    def name(self) -> str:
        return self.profile.name


def profile_for_gpu(gpu: DetectedGpu, profiles: ProfileSet, host_gib: float) -> DeviceProfile:
    """The profile whose ``nvml_names`` best match the GPU's name, with NVML's memory figure.

    Unified-memory GPUs report no memory through NVML (nvidia-smi prints [N/A] on a DGX Spark):
    then the profile's figure stands, or the host's RAM for an unknown GPU; never zero.
    """
    lowered = gpu.name.lower()
    best: tuple[int, DeviceProfile] | None = None
    for profile in profiles.profiles.values():
        for pattern in profile.nvml_names:
            if pattern.lower() in lowered and (best is None or len(pattern) > best[0]):
                best = (len(pattern), profile)
    if best is not None:
        profile = best[1]
        return profile.with_memory(gpu.memory_gib) if gpu.memory_gib else profile
    slug = re.sub(r"[^a-z0-9]+", "-", lowered.replace("nvidia", "")).strip("-") or "gpu"
    return DeviceProfile(
        name=slug,
        display_name=gpu.name,
        memory_gib=gpu.memory_gib or host_gib,
        unified=gpu.memory_gib is None,
        bandwidth_gbs=None,
        tflops={},
        compute_capability=gpu.compute_capability,
        source="detected through NVML; no profile matches this GPU (add one: gpubench_profiles)",
        origin="detected",
    )


def auto_profile(detection: Detection, profiles: ProfileSet) -> DeviceProfile:
    """The profile of the detected hardware: one GPU, N alike ('2xh200') or mixed ('a+b')."""
    if not detection.gpus:
        return host_cpu(profiles, detection)
    parts = [profile_for_gpu(g, profiles, detection.host_memory_gib) for g in detection.gpus]
    if len(parts) == 1:
        return parts[0]
    names = [p.name for p in parts]
    name = f"{len(parts)}x{names[0]}" if len(set(names)) == 1 else "+".join(names)
    if name in profiles.profiles:
        known = profiles.profiles[name]
        return compose(
            name,
            parts,
            display_name=known.display_name,
            interconnect_gbs=known.interconnect_gbs,
            source=known.source,
        )
    return compose(name, parts)


def host_cpu(profiles: ProfileSet, detection: Detection) -> DeviceProfile:
    cpu = profiles.get("cpu")
    return cpu if cpu.memory_gib else cpu.with_memory(round(detection.host_memory_gib, 1))


def select_device(
    requested: str, chosen_by: str, profiles: ProfileSet, detection: Detection
) -> SelectedDevice:
    """Resolve the request; raises GpubenchError (listing known names) for an unknown one."""
    if requested.strip().lower() == "auto":
        return SelectedDevice(auto_profile(detection, profiles), "auto", chosen_by, detection)
    profile = profiles.get(requested)
    if profile.name == "cpu":
        profile = host_cpu(profiles, detection)
    mismatch = ""
    if detection.gpus:
        present = auto_profile(detection, profiles)
        if present.name != profile.name:
            mismatch = (
                f"--device={profile.name} was asked for but this machine has {detection.summary} "
                f"(profile {present.name}); fit checks use {profile.name}'s figures and results "
                "record the detected GPU"
            )
    elif profile.name != "cpu":
        mismatch = (
            f"no GPU detected ({detection.nvml_error or 'NVML found none'}); fit checks use "
            f"{profile.name}'s figures, GPU benchmarks cannot run here"
        )
    return SelectedDevice(profile, requested, chosen_by, detection, mismatch)


def one_gpu(device: SelectedDevice, index: int) -> SelectedDevice:
    """``device`` narrowed to its GPU ``index`` (NVML's numbering): the profile of that one GPU
    (a part of a composed profile) and only that GPU detected; used for one GPU per worker."""
    from pytest_gpubench.errors import GpubenchError

    gpus = device.detection.gpus
    count = len(gpus) or device.profile.gpu_count
    if index >= count:
        raise GpubenchError(
            f"GPU {index} is not there: {device.name} has {count} GPU{'s' if count != 1 else ''}"
        )
    profile = device.profile.parts[index] if device.profile.parts else device.profile
    detection = replace(device.detection, gpus=(gpus[index],)) if gpus else device.detection
    return replace(device, profile=profile, detection=detection)


def describe(profile: DeviceProfile) -> str:
    """One line for headers and tables: memory, bandwidth, unified or split."""
    bits = [f"{profile.memory_gib:.1f} GiB"]
    if profile.parts:
        bits.append(f"largest GPU {profile.largest_gpu_gib:.1f} GiB")
    if profile.unified and profile.name != "cpu":
        bits.append("unified")
    if profile.bandwidth_gbs:
        bits.append(f"{profile.bandwidth_gbs:.0f} GB/s")
    return ", ".join(bits)


__all__ = ["SelectedDevice", "auto_profile", "describe", "one_gpu", "select_device"]
