"""Workloads from real data: ShareGPT files, saved ``datasets``, multi-turn chats, traces.

The files are small ones the tests write. Readers and request building are checked directly
with a word tokenizer (one token per word, as the stub server counts); the load loop and
``serve_bench`` against the stub server (pytest_gpubench/testing/stub_server.py: a stub
because its token counts and pacing are fixed, so the expected numbers can be computed by
hand). Live llama-server runs of the same files are in tests/integration/test_datasets_live.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import StreamingClient
from pytest_gpubench.serving.datasets import read_conversations, read_trace
from pytest_gpubench.serving.requests import ConversationSpec, RequestFactory, Workload
from pytest_gpubench.serving.run import run_load
from pytest_gpubench.serving.schedule import LoadSpec

from plumbing.servers import SERVER_CLASSES


class WordTok:
    """One token per whitespace-separated word (the stub server's count); round-trips."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for w in text.split():
            if w not in self.vocab:
                self.vocab[w] = len(self.words)
                self.words.append(w)
            ids.append(self.vocab[w])
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)


SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "system", "value": "be brief"},
            {"from": "human", "value": "name three colours"},
            {"from": "gpt", "value": "red green blue"},
            {"from": "human", "value": "and two more please"},
            {"from": "gpt", "value": "yellow and also purple today"},
        ],
    },
    {"id": "b", "conversations": [{"from": "human", "value": "no reply recorded"}]},  # skipped
    {
        "id": "c",
        "conversations": [
            {"from": "human", "value": "one two three four five"},
            {"from": "gpt", "value": "a b c d e f g h"},
        ],
    },
]


@pytest.fixture
def sharegpt(tmp_path):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(SHAREGPT))
    return path


def test_sharegpt_file_gives_first_turns_with_recorded_reply_lengths(sharegpt) -> None:
    convs = read_conversations(sharegpt)
    assert [c.index for c in convs] == [0, 2]  # "b" has no reply
    assert convs[0].system == "be brief"
    assert [t.user for t in convs[0].turns] == ["name three colours", "and two more please"]
    w = Workload(dataset=sharegpt, endpoint="chat")
    specs = RequestFactory(w, WordTok()).take(3)
    # the recorded replies' word counts: "red green blue" = 3, "a b c d e f g h" = 8; cycled
    assert [s.max_tokens for s in specs] == [3, 8, 3]
    assert specs[0].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "name three colours"},
    ]
    assert specs[0].body["ignore_eos"] is True
    # completions: the system prompt and the user message as one prompt, counted exactly
    c = RequestFactory(Workload(dataset=sharegpt), WordTok()).take(1)[0]
    assert c.body["prompt"] == "be brief\n\nname three colours" and c.input_tokens == 5
    # warm-ups take the dataset from its end, so they never pre-fill the measured prompts
    warm = RequestFactory(w, WordTok(), stream=1).take(1)[0]
    assert warm.body["messages"][-1]["content"] == "one two three four five"
    # the next draw of a test (another sweep point, a round) continues after the rows the
    # earlier ones took, so it does not re-send them while the dataset lasts
    later = RequestFactory(w, WordTok(), skip=1).take(1)[0]
    assert later.body["messages"][-1]["content"] == "one two three four five"
    later_warm = RequestFactory(w, WordTok(), stream=1, skip=1).take(1)[0]
    assert later_warm.body["messages"][-1]["content"] == "name three colours"


def test_saved_datasets_parquet_and_jsonl_are_read_through_datasets(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "question": ["what is two plus two", "say hi"],
        "answer": ["it is four", "hi there you"],
    }
    ds = datasets.Dataset.from_dict(rows)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "d.parquet"))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "dict"))
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"messages": [{"role": "user", "content": q},
                                           {"role": "assistant", "content": a}]})
                  for q, a in zip(rows["question"], rows["answer"], strict=True))
    )  # fmt: skip
    for name in ("saved", "d.parquet", "dict", "d.jsonl"):
        specs = RequestFactory(Workload(dataset=tmp_path / name, endpoint="chat"), WordTok()).take(
            2
        )
        assert [s.max_tokens for s in specs] == [3, 3], name  # "it is four", "hi there you"
        assert specs[1].body["messages"][-1] == {"role": "user", "content": "say hi"}, name
    # other column names, named
    ds2 = datasets.Dataset.from_dict({"q": ["x y"], "a": ["one two three four"], "id": [1]})
    ds2.to_parquet(str(tmp_path / "other.parquet"))
    w = Workload(dataset=tmp_path / "other.parquet", dataset_columns={"prompt": "q", "reply": "a"})
    assert RequestFactory(w, WordTok()).take(1)[0].max_tokens == 4


def test_a_bad_dataset_is_one_error_naming_the_file_and_the_fix(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"text": "hello", "label": 1}]))
    with pytest.raises(GpubenchError, match=r"bad.json has no conversation column: its columns "
                       r"are \['label', 'text'\].*dataset_columns="):  # fmt: skip
        read_conversations(bad)
    with pytest.raises(GpubenchError, match=r"dataset_columns\['reply'\] = 'nope' is not a column"):
        read_conversations(bad, {"prompt": "text", "reply": "nope"})
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(GpubenchError, match=r"broken.json is not JSON"):
        read_conversations(tmp_path / "broken.json")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(GpubenchError, match=r"x.txt: unknown file type; pass a ShareGPT"):
        read_conversations(tmp_path / "x.txt")
    none = tmp_path / "none.json"
    none.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}]}]))
    with pytest.raises(GpubenchError, match=r"1 records but none with a user message followed"):
        read_conversations(none)


def test_multi_turn_conversation_specs_carry_every_turn(sharegpt) -> None:
    w = Workload(dataset=sharegpt, endpoint="chat", multi_turn=True)
    conv = RequestFactory(w, WordTok()).take(1)[0]
    assert isinstance(conv, ConversationSpec)
    assert conv.turns == (("name three colours", 3), ("and two more please", 5))
    history = [{"role": "system", "content": "be brief"}]
    spec = conv.turn_spec(2, [*history, {"role": "user", "content": "u"},
                              {"role": "assistant", "content": "r"}])  # fmt: skip
    assert [m["role"] for m in spec.body["messages"]] == ["system", "user", "assistant", "user"]
    assert spec.turn == 2 and spec.max_tokens == 5 and spec.conversation == 0
    w1 = Workload(dataset=sharegpt, endpoint="chat", multi_turn=True, max_turns=1)
    assert len(RequestFactory(w1, WordTok()).take(1)[0].turns) == 1
    with pytest.raises(GpubenchError, match="multi_turn needs endpoint='chat'"):
        Workload(dataset=sharegpt, endpoint="completions", multi_turn=True)


MOONCAKE = [
    {"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]},
    {"timestamp": 1500, "input_length": 40, "output_length": 3, "hash_ids": [2]},
    {"timestamp": 500, "input_length": 1100, "output_length": 4, "hash_ids": [0, 1, 3]},
]
BURSTGPT = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,30,7,37,Conversation log\n"
    "6.5,ChatGPT,12,0,12,Conversation log\n"  # a failed request (0 response tokens): skipped
    "7.25,GPT-4,20,2,22,API log\n"
)


def test_mooncake_and_burstgpt_traces_are_read_in_seconds(tmp_path) -> None:
    moon = tmp_path / "mooncake.jsonl"
    moon.write_text("\n".join(json.dumps(r) for r in MOONCAKE))
    rows = read_trace(moon)  # ms -> s, sorted by arrival
    assert [(r.arrival_s, r.input_len, r.output_len) for r in rows] == [
        (0.0, 600, 5),
        (0.5, 1100, 4),
        (1.5, 40, 3),
    ]
    burst = tmp_path / "burst.csv"
    burst.write_text(BURSTGPT)
    rows = read_trace(burst)  # seconds after the first row
    assert [(r.arrival_s, r.input_len, r.output_len) for r in rows] == [(0.0, 30, 7), (2.25, 20, 2)]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,in,out\n0,1,2\n")
    with pytest.raises(GpubenchError, match=r"bad.csv has the columns \['in', 'out', 'time'\]; "
                       "a trace needs Mooncake's columns"):  # fmt: skip
        read_trace(bad)
    worse = tmp_path / "worse.jsonl"
    worse.write_text('{"timestamp": 0, "input_length": "many", "output_length": 2}\n')
    with pytest.raises(GpubenchError, match=r"worse.jsonl, row 1: 'input_length' must be a whole"):
        read_trace(worse)


def test_trace_requests_have_the_rows_lengths_shared_blocks_and_scaled_arrivals(tmp_path) -> None:
    moon = tmp_path / "mooncake.jsonl"
    moon.write_text("\n".join(json.dumps(r) for r in MOONCAKE))
    tok = WordTok()
    w = Workload(trace_file=moon, trace_time_scale=0.5)
    specs = RequestFactory(w, tok).take(100)  # a trace: each row once
    assert len(specs) == 3
    assert [s.arrival for s in specs] == [0.0, 0.25, 0.75]  # 0, 0.5, 1.5 s x 0.5
    assert [s.max_tokens for s in specs] == [5, 4, 3]
    assert [len(tok.encode(s.body["prompt"])) for s in specs] == [600, 1100, 40]
    assert [s.input_tokens for s in specs] == [600, 1100, 40]
    # rows 1 and 2 share the 512-token block 0; block 1 is full in row 2 only
    a, b = specs[0].body["prompt"].split(), specs[1].body["prompt"].split()
    assert a[:512] == b[:512]
    assert a[512:] != b[512:600]
    # warm-ups: no arrival time, and other block text
    warm = RequestFactory(w, tok, stream=1).take(1)[0]
    assert warm.arrival is None and warm.body["prompt"].split()[:512] != a[:512]


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_trace_replay_sends_each_request_at_its_scaled_arrival(stub_server, tmp_path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        "\n".join(
            json.dumps({"timestamp": ms, "input_length": 8, "output_length": 4})
            for ms in (0, 400, 400, 1000)
        )
    )
    specs = RequestFactory(Workload(trace_file=trace, trace_time_scale=0.3), WordTok()).take(10)

    async def go():
        client = StreamingClient(stub_server.base_url, stub_server.model)
        try:
            return await run_load(client, specs, LoadSpec(concurrency=None, num_requests=50))
        finally:
            await client.aclose()

    res = run(go())
    assert res.stopped_by == "trace" and len(res.results) == 4
    assert all(r.ok and r.output_tokens == 4 for r in res.results)
    sent = sorted(r.start - res.start for r in res.results)
    for got, want in zip(sent, [0.0, 0.12, 0.12, 0.3], strict=True):  # ms x 0.3 / 1000
        assert got == pytest.approx(want, abs=0.03)


def test_multi_turn_sends_the_whole_history_with_the_generated_replies(stub_server, sharegpt):
    w = Workload(dataset=sharegpt, endpoint="chat", multi_turn=True)
    tok = WordTok()
    specs = RequestFactory(w, tok).take(2)

    async def go():
        client = StreamingClient(stub_server.base_url, stub_server.model)
        try:
            return await run_load(client, specs, LoadSpec(concurrency=2, num_requests=2))
        finally:
            await client.aclose()

    res = run(go())
    assert res.turns_not_sent == 0
    by = {(r.spec.conversation, r.spec.turn): r for r in res.results}
    assert sorted(by) == [(0, 1), (0, 2), (2, 1)]
    assert all(r.ok for r in res.results)
    # the stub counts a chat prompt as its words plus 3 per message; it replies " tok" x n
    t1, t2 = by[(0, 1)], by[(0, 2)]
    assert t1.usage_prompt_tokens == 2 + 3 + 3 * 2  # system, user
    assert t1.output_tokens == 3 and t1.text == " tok" * 3
    # turn 2: system + user 1 + the stub's 3-word reply + user 2, 4 messages
    assert t2.spec.body["messages"][2] == {"role": "assistant", "content": " tok tok tok"}
    assert t2.usage_prompt_tokens == 2 + 3 + 3 + 4 + 3 * 4
    assert t2.output_tokens == 5  # "yellow and also purple today"
    assert t2.start >= t1.end  # sent after turn 1 finished
    assert by[(2, 1)].usage_prompt_tokens == 5 + 3 and by[(2, 1)].output_tokens == 8


def test_a_failed_turn_ends_its_conversation(start_stub, sharegpt) -> None:
    stub = start_stub("--fail-every", "1")
    specs = RequestFactory(
        Workload(dataset=sharegpt, endpoint="chat", multi_turn=True), WordTok()
    ).take(1)

    async def go():
        client = StreamingClient(stub.base_url, stub.model)
        try:
            return await run_load(client, specs, LoadSpec(concurrency=1, num_requests=1))
        finally:
            await client.aclose()

    res = run(go())
    assert len(res.results) == 1 and not res.results[0].ok and res.turns_not_sent == 1


SERVER = (
    """
import json, math, warnings
"""
    + SERVER_CLASSES
    + """
URL = {url!r}
"""
)


def test_serve_bench_records_per_turn_metrics(pytester, stub_server, sharegpt) -> None:
    pytester.makepyfile(
        SERVER.format(url=stub_server.base_url)
        + f"""
def test_multi(serve_bench):
    r = serve_bench(Server(URL), dataset={str(sharegpt)!r}, multi_turn=True, num_prompts=2,
                    concurrency=2, warmups=1)
    assert r.completed == 3 and r.failed == 0
    m = r.metrics
    # the stub: words + 3 per message; turn 1 of both conversations, turn 2 of the first
    assert m["input_tokens.turn1"].value == ((2 + 3 + 3 * 2) + (5 + 3)) / 2
    assert m["input_tokens.turn2"].value == 2 + 3 + 3 + 4 + 3 * 4
    assert m["ttft_ms.turn2"].unit == "ms" and m["ttft_ms.turn2"].spread["n"] == 1
    assert m["output_tokens"].value == (3 + 5 + 8) / 3  # the recorded replies' lengths
    assert r.workload["multi_turn"] is True and r.workload["turns_not_sent"] == 0
    assert r.workload["endpoint"] == "chat" and r.short_outputs == 0
"""
    )
    result = pytester.runpytest("--device=cpu", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_trace_held_back_by_the_concurrency_cap_warns(pytester, start_stub, tmp_path) -> None:
    stub = start_stub("--ttft-ms", "80")
    trace = tmp_path / "t.csv"
    trace.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        + "".join(f"{t},ChatGPT,6,3,9,Conversation log\n" for t in (0, 0, 0, 0))
    )
    pytester.makepyfile(
        SERVER.format(url=stub.base_url)
        + f"""
def test_trace(serve_bench):
    r = serve_bench(Server(URL), trace_file={str(trace)!r}, concurrency=1, num_prompts=100)
    assert r.completed == 4 and r.stopped_by == "trace"
    assert [x.output_tokens for x in r.results] == [3, 3, 3, 3]
    assert [x.usage_prompt_tokens for x in r.results] == [6, 6, 6, 6]
"""
    )
    result = pytester.runpytest("--device=cpu", "-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1)
    # all four are due at 0; one at a time, each after the one before (>= 80 ms each)
    result.stdout.fnmatch_lines(
        ["*3 of 4 trace requests were sent more than 50 ms after their arrival time*"
         "concurrency=1*pass concurrency=None*"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "serve_bench(Server(URL), dataset='nowhere.json')",
            "serve_bench: dataset: nowhere.json does not exist; pass a ShareGPT-format .json",
        ),
        (
            "serve_bench(Server(URL), multi_turn=True)",
            "serve_bench: multi_turn needs dataset= (a file of conversations)",
        ),
        (
            "serve_bench(Server(URL), trace_file=TRACE, request_rate=5)",
            "serve_bench: trace_file gives every request's arrival time; drop request_rate",
        ),
        (
            "serve_bench(Server(URL), trace_file=TRACE, trace_time_scale=0)",
            "serve_bench: trace_time_scale must be a number > 0, got 0",
        ),
        (
            "serve_bench(Server(URL), dataset=TRACE)",
            "has no conversation column: its columns are ['input_length', 'output_length', "
            "'timestamp']",
        ),
    ],
)
def test_data_misuse_is_one_line(pytester, stub_server, tmp_path, call, message) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 3, "output_length": 2}\n')
    pytester.makepyfile(
        SERVER.format(url=stub_server.base_url)
        + f"TRACE = {str(trace)!r}\n\ndef test_misuse(serve_bench):\n    {call}\n"
    )
    result = pytester.runpytest("--device=cpu", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert message in out and "Traceback" not in out
