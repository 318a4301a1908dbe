"""Trace files a replay cannot run, refused before it starts: one line naming the file and the
row, never a hang or a traceback; a replay longer than the test's timeout is warned about.

The files are written here; the replays run against the stub server
(pytest_gpubench/testing/stub_server.py: a stub because its token counts are fixed) through
real pytest runs in a subprocess, so a hang shows as the subprocess's timeout, not as this
suite hanging.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import StreamingClient
from pytest_gpubench.serving.datasets import MAX_TRACE_TOKENS, check_replay, read_trace
from pytest_gpubench.serving.requests import RequestFactory, Workload
from pytest_gpubench.serving.run import run_load
from pytest_gpubench.serving.schedule import LoadSpec

from plumbing.servers import SERVER_CLASSES

SERVER = SERVER_CLASSES + "URL = {url!r}\n"
BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


class WordTok:
    """One token per whitespace-separated word (the stub server's count)."""

    def __init__(self) -> None:
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for w in text.split():
            if w not in self.words:
                self.words.append(w)
            ids.append(self.words.index(w))
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)


def mooncake(path: Path, *rows: dict) -> Path:
    """A Mooncake-format trace: the given rows (timestamps in ms)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(ts: object = 0, n_in: object = 4, n_out: object = 2) -> dict:
    return {"timestamp": ts, "input_length": n_in, "output_length": n_out}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row(ts=float("inf")), "'timestamp' must be a finite number >= 0, got inf"),
        (row(ts=float("nan")), "'timestamp' must be a finite number >= 0, got nan"),
        (row(n_out=1e15), f"'output_length' must be a whole number from 0 to {MAX_TRACE_TOKENS:,}"),
        (row(n_out=True), "'output_length' must be a whole number from 0 to 10,000,000, got True"),
        (row(n_in=float("inf")), "'input_length' must be a whole number from 0 to 10,000,000"),
        (row(n_in=MAX_TRACE_TOKENS + 1), "'input_length' must be a whole number"),
    ],
    ids=["ts-inf", "ts-nan", "out-1e15", "out-true", "in-inf", "in-over"],
)
def test_a_row_out_of_bounds_is_named(tmp_path: Path, bad: dict, message: str) -> None:
    """Row 2 of 3 (json.dumps writes Infinity/NaN, which Python's JSON reader accepts)."""
    trace = mooncake(tmp_path / "t.jsonl", row(0), bad, row(10))
    with pytest.raises(GpubenchError) as err:
        read_trace(trace)
    assert str(err.value).startswith(f"trace file {trace}, row 2: {message}"), str(err.value)


def test_the_largest_allowed_lengths_are_read(tmp_path: Path) -> None:
    """The bound is not a cut below it: the longest published context is still a trace row."""
    trace = mooncake(tmp_path / "t.jsonl", row(0, MAX_TRACE_TOKENS, MAX_TRACE_TOKENS))
    assert read_trace(trace)[0].output_len == MAX_TRACE_TOKENS


def test_a_non_utf8_csv_trace_names_the_file_line_and_fix(tmp_path: Path) -> None:
    """A Latin-1 'é' in BurstGPT's Model column on line 3: was a UnicodeDecodeError."""
    trace = tmp_path / "burst.csv"
    text = BURST_HEADER + "0,ChatGPT,3,2,5,Conversation log\n1,caf\u00e9,3,2,5,API log\n"
    trace.write_bytes(text.encode("latin-1"))
    with pytest.raises(GpubenchError) as err:
        read_trace(trace)
    assert str(err.value) == (
        f"trace file {trace}, line 3: not UTF-8 text (byte 0xe9); save it as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8)"
    )


def test_a_replay_past_a_week_names_its_last_row(tmp_path: Path) -> None:
    """1e12 s (a Mooncake timestamp of 1e15 ms) is finite but never arrives: the replay of the
    rows sent would wait for it. Sent rows only: a long trace replayed in part is fine."""
    trace = mooncake(tmp_path / "t.jsonl", row(0), row(1000), row(1e15))
    assert check_replay(trace, 1.0, rows_sent=2) is None  # the first two: 1 s
    with pytest.raises(GpubenchError) as err:
        check_replay(trace, 1.0, rows_sent=3)
    assert str(err.value).startswith(
        f"trace file {trace}: row 3 arrives 1e+12 s after the first row, so the replay would "
        "run 3.17e+04 years (trace_time_scale=1), past the 7 days a replay may run;"
    ), str(err.value)
    assert check_replay(trace, 1e-7, rows_sent=3) is None  # scaled to 1e5 s: within a week


def test_a_replay_longer_than_a_budget_is_a_warning_naming_it(tmp_path: Path) -> None:
    trace = mooncake(tmp_path / "t.jsonl", row(0), row(5000), row(3000))  # rows sorted: 5 s
    budget = {"the test's timeout": 12.0}
    assert check_replay(trace, 2.0, 3, budgets=budget) is None  # 10 s
    note = check_replay(trace, 2.0, 3, rounds=2, budgets=budget)  # 20 s
    assert note == (
        f"trace file {trace}: row 2 arrives 5 s after the first row, so the replay would run "
        "10 s (trace_time_scale=2) x 2 rounds, longer than the test's timeout=12 s; send fewer "
        "rows (num_prompts=) or pass a smaller trace_time_scale"
    )


def run_inner(pytester: pytest.Pytester, body: str, url: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(SERVER.format(url=url) + body)
    return pytester.runpytest_subprocess(
        "--device=cpu", "-p", "no:cacheprovider", "-W", "default", *args, timeout=120
    )


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        ("Infinity", "row 2: 'timestamp' must be a finite number >= 0, got inf"),
        ("1e15", "row 2 arrives 1e+12 s after the first row, so the replay would run"),
    ],
)
def test_serve_bench_refuses_a_replay_that_never_ends(
    pytester, stub_server, tmp_path, timestamp, message
) -> None:
    """Was a replay waiting forever for its second row (until an outside timeout)."""
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 0, "input_length": 4, "output_length": 2}\n'
        f'{{"timestamp": {timestamp}, "input_length": 4, "output_length": 2}}\n'
    )
    call = f"serve_bench(Server(URL), trace_file={str(trace)!r})"
    body = f"\ndef test_replay(serve_bench):\n    {call}\n"
    result = run_inner(pytester, body, stub_server.base_url)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert f"serve_bench: trace file {trace}" in out and message in out, out
    assert "Traceback" not in out, out


def test_serve_bench_warns_before_a_replay_longer_than_the_test_timeout(
    pytester, stub_server, tmp_path
) -> None:
    """pytest-timeout's marker at 3 s, a replay of 4 s (80 s at trace_time_scale=0.05): the
    warning names the row and the timeout, then pytest-timeout ends the test. The same file
    with num_prompts=1 (the first row only: no wait) passes without the warning."""
    trace = mooncake(tmp_path / "t.jsonl", row(0), row(80_000))
    body = f"""
import pytest

@pytest.mark.timeout(3)
def test_long(serve_bench):
    serve_bench(Server(URL), trace_file={str(trace)!r}, trace_time_scale=0.05, num_prompts=2)

@pytest.mark.timeout(3)
def test_short(serve_bench):
    r = serve_bench(Server(URL), trace_file={str(trace)!r}, trace_time_scale=0.05, num_prompts=1)
    assert r.completed == 1
"""
    result = run_inner(pytester, body, stub_server.base_url)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    warned = (
        "row 2 arrives 80 s after the first row, so the replay would run 4 s "
        "(trace_time_scale=0.05), longer than the test's timeout=3 s"
    )
    assert out.count(warned) == 1, out
    assert "Timeout" in out, out


def test_a_duration_ends_a_replay_whose_next_row_is_due_later(stub_server, tmp_path) -> None:
    """duration_s=1 with the trace's second row an hour later: the run ends at 1 s (it waited
    the hour for that row, then stopped without sending it)."""
    trace = mooncake(tmp_path / "t.jsonl", row(0), row(3_600_000))
    specs = RequestFactory(Workload(trace_file=trace), WordTok()).take(10)
    load = LoadSpec(concurrency=4, num_requests=None, duration_s=1.0)

    async def go():
        client = StreamingClient(stub_server.base_url, stub_server.model)
        try:
            return await asyncio.wait_for(run_load(client, specs, load), timeout=30)
        finally:
            await client.aclose()

    res = asyncio.new_event_loop().run_until_complete(go())
    assert res.stopped_by == "duration" and len(res.results) == 1 and res.results[0].ok
    assert res.end - res.start == pytest.approx(1.0, abs=0.5)


def test_deeply_nested_json_data_is_one_error_naming_the_file(tmp_path: Path) -> None:
    """A ShareGPT .json or a trace line nested past the JSON parser's limit: was a
    RecursionError from inside."""
    from pytest_gpubench.serving.datasets import read_conversations

    deep = "[" * 100_000 + "]" * 100_000
    dataset = tmp_path / "chats.json"
    dataset.write_text(deep)
    with pytest.raises(GpubenchError, match=f"dataset {dataset} is not JSON"):
        read_conversations(dataset)
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps(row(0)) + "\n" + deep + "\n")
    with pytest.raises(GpubenchError, match=rf"{trace}:2: not JSON \(nested too deeply\)"):
        read_trace(trace)


def test_a_duration_sends_nothing_due_after_it(stub_server) -> None:
    """2 requests/s on a constant schedule for 1.2 s, no concurrency cap: due at 0, 0.5 and
    1.0 s are sent; the one due at 1.5 s is not (it was sent at 1.5 s, past the run's end;
    waiting for the end alone would have sent it early, at 1.2 s)."""
    w = Workload(input_len=4, output_len=2)
    specs = RequestFactory(w, WordTok()).take(10)
    load = LoadSpec(concurrency=None, rate=2.0, arrival="constant", num_requests=None,
                    duration_s=1.2)  # fmt: skip

    async def go():
        client = StreamingClient(stub_server.base_url, stub_server.model)
        try:
            return await asyncio.wait_for(run_load(client, specs, load), timeout=30)
        finally:
            await client.aclose()

    res = asyncio.new_event_loop().run_until_complete(go())
    assert res.stopped_by == "duration" and len(res.results) == 3, res.results
    sent = sorted(r.start - res.start for r in res.results)
    for got, want in zip(sent, [0.0, 0.5, 1.0], strict=True):
        assert got == pytest.approx(want, abs=0.15)
