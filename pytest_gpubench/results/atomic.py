"""Atomic file writes: every file the plugin writes appears whole or not at all.

The new content goes to a temporary file next to the target, named
``.<target>.<host>.<pid>.<random>.gpubench.tmp``, which is fsynced and renamed over the target. The
target keeps its permission bits when it exists; a new file gets what ``open`` would give it
(0666 less the umask), never the 0600 of ``tempfile.mkstemp``. An exception removes the
temporary file; a writer killed outright (SIGKILL, power loss) cannot clean up, so every write
first removes the temporary files of the same target whose writer is no longer running (on
this host; another host's, on a shared file system, once they are a day old).

``exclusive_lock`` serialises the writers of one file that read it first (a baseline's
load-merge-write): of two pytest runs saving to one baseline at once, the second merges into
what the first wrote instead of into the file as it was before either. ``write_error`` turns
a failed write into one line naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pytest_gpubench.errors import GpubenchError

TMP_SUFFIX = ".gpubench.tmp"
STALE_AFTER_S = 24 * 3600.0  # a temp file this old is stale even if its pid is alive (reused)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def temp_name(target: str, pid: int, token: str, host: str | None = None) -> str:
    return f".{target}.{host or _host()}.{pid}.{token}{TMP_SUFFIX}"


def _temp_pattern(target: str) -> re.Pattern[str]:
    return re.compile(
        rf"\.{re.escape(target)}\.([A-Za-z0-9-]+)\.(\d+)\.[0-9a-f]+{re.escape(TMP_SUFFIX)}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process (or a pid we cannot check): leave it
    return True


def sweep_stale(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that died; returns them."""
    pattern = _temp_pattern(path.name)
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    now = time.time()
    here = _host()
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        host, pid = match.group(1), int(match.group(2))
        leftover = path.parent / name
        if host == here and pid == os.getpid():
            continue  # this process's own write in progress (another thread)
        if host != here or _alive(pid):
            try:
                if now - leftover.stat().st_mtime < STALE_AFTER_S:
                    continue
            except OSError:
                continue
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def write_text_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A crash at any point leaves either the old file or the new one, never half of one. An
    exception leaves no temporary file behind; a killed writer's is removed by the next write
    of the same target (the rename is atomic on POSIX within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    try:
        keep_mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        keep_mode = None
    tmp = path.parent / temp_name(path.name, os.getpid(), secrets.token_hex(6))
    # O_EXCL: never reuse an existing file; mode 0666 is narrowed by the umask, as open() does
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            if keep_mode is not None:
                os.chmod(tmp, keep_mode)
            fh.write(text.encode() if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def lock_path(path: Path) -> Path:
    """The lock file beside ``path`` (``.h100.json.lock``): kept, never removed, since removing
    a lock file another process waits on would let a third one take a second lock."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``'s lock file for the block (waiting for it).

    flock locks belong to the open file, so a writer that dies drops its lock with it; the
    lock is advisory: every writer of the file takes it (baseline saves, storage saves).
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    # read-only: flock needs no write access, so another user's lock file in a shared folder
    # (0644 under the usual umask) serves as well as one's own
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def write_error(path: Path, exc: OSError) -> GpubenchError:
    """One line for a write that failed: the target (not its temporary file) and the reason,
    with the path the system named when it is another one (a parent that is a file)."""
    reason = exc.strerror or str(exc)
    other = str(exc.filename or "")
    if isinstance(exc, FileExistsError) and other and Path(other) in Path(path).parents:
        reason = os.strerror(errno.ENOTDIR)  # mkdir(exist_ok=True) of a folder that is a file
    if other and other != str(path) and not other.endswith(TMP_SUFFIX):
        reason += f": {other}"
    return GpubenchError(f"cannot write {path}: {reason}")


def write_or_explain(path: Path, text: str | bytes) -> None:
    """``write_text_atomic``, a disk error (full, read-only, not a folder) raised as one
    ``GpubenchError`` line naming ``path``; the old file is left as it was."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise write_error(path, exc) from None


def check_writable(path: Path) -> None:
    """Fail before a run whose results could not be stored at ``path``: its folder must exist
    or be creatable and take a new file (the lock file, which saves use anyway)."""
    path = Path(path)
    lock = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock, os.O_RDONLY | os.O_CREAT, 0o666))
        if not os.access(path.parent, os.W_OK):  # the lock file may be there already
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path.parent))
    except OSError as exc:
        if exc.filename == str(lock):  # the folder refused a new file: name the folder
            exc.filename = str(path.parent)
        raise write_error(path, exc) from None
