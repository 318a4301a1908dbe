"""Failed requests by kind, and whether a server still answers.

A sweep or capacity point whose error rate passes ``max_error_rate`` is a failed point: its
requests' errors are counted by kind (an HTTP status, a timeout, a stalled stream, a lost
connection, anything else), and when they are all connection errors the server is asked
whether it still listens, so a server that died mid-search is said to be dead rather than
taken for a server that misses its SLO or lacks an endpoint.
"""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

from pytest_gpubench.serving.client import RequestResult

#: the client's words for a connection that could not be made or was lost (aiohttp, httpx)
CONNECTION_WORDS = (
    "Connect",
    "Connection",
    "Disconnected",
    "RemoteProtocolError",
    "ReadError",
    "WriteError",
    "OSError",
    "Payload",
    "refused",
    "reset",
)


def error_kind(error: str) -> str:
    """One failed request's kind: ``HTTP <status>``, ``timeout``, ``stall``, ``connection``
    or ``other`` (a malformed or empty stream, a server error inside the stream)."""
    status = re.match(r"HTTP (\d{3})", error)
    if status:
        return f"HTTP {status.group(1)}"
    if error.startswith("timed out"):
        return "timeout"
    if error.startswith("stream stalled"):
        return "stall"
    if any(word in error.split(":", 1)[0] for word in CONNECTION_WORDS):
        return "connection"
    return "other"


def error_kinds(results: Sequence[RequestResult]) -> Counter[str]:
    """The failed requests of ``results`` counted by kind."""
    return Counter(error_kind(r.error or "") for r in results if not r.ok)


def kinds_text(results: Sequence[RequestResult]) -> str:
    """``12 x HTTP 429, 2 x timeout``: most frequent first."""
    return ", ".join(f"{n} x {kind}" for kind, n in error_kinds(results).most_common())


def unreachable(base_url: str, timeout_s: float = 2.0) -> str | None:
    """Why nothing listens at ``base_url`` (``connection refused``), or None when a TCP
    connection opens."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def point_failure(
    label: str, results: Sequence[RequestResult], max_error_rate: float, base_url: str
) -> str | None:
    """What makes a point a failed point, in one line (None when its error rate is within
    ``max_error_rate``): its failed requests, their kinds, the first error, and a dead server
    said to be dead."""
    failed = [r for r in results if not r.ok]
    if not results or len(failed) / len(results) <= max_error_rate:
        return None
    rate = len(failed) / len(results)
    first = (failed[0].error or "?").splitlines()[0][:200]
    line = (
        f"point {label} failed: {len(failed)} of {len(results)} requests failed (error rate "
        f"{rate:.1%} > allowed {max_error_rate:.1%}): {kinds_text(results)}; first: {first}"
    )
    if set(error_kinds(results)) == {"connection"}:
        why = unreachable(base_url)
        if why is not None:
            line += f"; the server at {base_url} is dead ({why}): it stopped answering"
    return line
