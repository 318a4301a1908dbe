"""Request sources: where a run's requests come from, each behind one small protocol.

A ``RequestSource`` has a ``name``, says whether it needs the tokenizer for a workload, and
makes a ``Draw``'s requests (a draw is one set: the measured requests of a round, or the
warm-ups, reproducible from the test's id, the draw's number and the run's nonce). The
built-ins (random text, prompts file, preset, dataset, trace, conversations, images) are
picked by the ``serve_bench`` keyword that names their input and share ``RequestFactory``
(serving/requests.py), which reads the data through serving/datasets.py. A conftest adds one
through the ``pytest_gpubench_register_request_sources`` hook; a test uses it as
``serve_bench(server, source="its name", ...)``, or passes the source object itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import RequestSpec
from pytest_gpubench.serving.registry import Registry
from pytest_gpubench.serving.requests import ConversationSpec, RequestFactory, Workload
from pytest_gpubench.serving.tokens import Tokenizer

Sendable = RequestSpec | ConversationSpec


@dataclass(frozen=True)
class Draw:
    """One set of requests to make: ``count`` of them for ``workload``. ``stream`` 0 is the
    measured requests, 1 the warm-ups; ``key`` (test key, n-th set) and ``nonce`` seed them;
    ``skip``: the dataset rows earlier sets of this test took."""

    workload: Workload
    tokenizer: Tokenizer | None
    count: int
    stream: int = 0
    key: tuple[int, ...] = ()
    nonce: int | None = None
    skip: int = 0


@runtime_checkable
class RequestSource(Protocol):
    name: str

    def needs_tokenizer(self, workload: Workload) -> bool:
        """Whether ``draw`` reads ``Draw.tokenizer`` (the server's /tokenize by default)."""
        ...

    def draw(self, draw: Draw) -> Sequence[Sendable]:
        """``draw.count`` requests (fewer where the source holds fewer, as a trace does)."""
        ...


SOURCES: Registry[RequestSource] = Registry(
    "request source",
    ("name", "needs_tokenizer", "draw"),
    "give it a name, needs_tokenizer(workload) and draw(draw) -> requests",
)


@dataclass(frozen=True)
class BuiltinSource:
    """A built-in source: chosen when ``applies(workload)``; requests from RequestFactory."""

    name: str
    applies: Callable[[Workload], bool]

    def needs_tokenizer(self, workload: Workload) -> bool:
        return workload.needs_tokenizer

    def draw(self, draw: Draw) -> list[Sendable]:
        factory = RequestFactory(
            draw.workload,
            draw.tokenizer,
            stream=draw.stream,
            draw=draw.key,
            nonce=draw.nonce,
            skip=draw.skip,
        )
        return factory.take(draw.count)  # type: ignore[return-value]


#: the built-ins in the order they are tried (the first whose input is given)
BUILTIN = (
    BuiltinSource("trace", lambda w: w.trace_file is not None),
    BuiltinSource("conversations", lambda w: w.dataset is not None and w.multi_turn),
    BuiltinSource("dataset", lambda w: w.dataset is not None),
    BuiltinSource("prompts_file", lambda w: w.prompts_file is not None),
    BuiltinSource("preset", lambda w: w.preset is not None),
    BuiltinSource("images", lambda w: bool(w.images)),
    BuiltinSource("random", lambda w: True),
)
for _source in BUILTIN:
    SOURCES.register(_source)


def source_for(workload: Workload, source: Any = None) -> RequestSource:
    """The source of a run: ``source`` (a registered name or a source), else the built-in
    that the workload's keywords name."""
    if source is None:
        return next(s for s in BUILTIN if s.applies(workload))
    if isinstance(source, str):
        found = SOURCES.get(source, "source")
        if isinstance(found, BuiltinSource) and not found.applies(workload):
            raise GpubenchError(
                f"source={source!r} is a built-in source: give its own keyword instead "
                "(prompts_file=, preset=, dataset=, trace_file=, images=)"
            )
        return found
    if not isinstance(source, RequestSource):
        raise GpubenchError(
            f"source must be a registered request source's name or an object with name, "
            f"needs_tokenizer(workload) and draw(draw), got {source!r}"
        )
    return source
