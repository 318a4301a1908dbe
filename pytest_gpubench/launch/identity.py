"""Which process a pid names: a pid is reused, so the plugin keeps a pid with its start time
and the machine it is meaningful on (this boot, this pid namespace), and a process is "alive"
only while both still match (launch/reaper.py records these for every process a run starts).
"""

from __future__ import annotations

import os

import psutil

START_TOLERANCE_S = 0.05


def start_time(pid: int) -> float | None:
    """The process's start time (psutil's create_time), or None if it is gone or a zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return round(proc.create_time(), 2)
    except psutil.Error:
        return None


def same_start(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < START_TOLERANCE_S


def alive(pid: int, start: float) -> bool:
    """This very process (not a later one that got its pid) still runs."""
    return same_start(start_time(pid), start)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """What a pid is only meaningful within: this boot and this pid namespace."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return {"boot": _read("/proc/sys/kernel/random/boot_id"), "pidns": pidns}
