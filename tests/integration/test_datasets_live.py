"""Workloads from real data against a live llama-server (the tiny GGUF): a ShareGPT-format
file, a saved ``datasets`` dataset, a multi-turn file and a trace, each a handful of requests.

Expected output lengths are the recorded replies' token counts, asked of the same server's
``/tokenize`` here; trace arrivals are the file's times times the scale.
"""

from __future__ import annotations

import json

import httpx
import pytest

from plumbing.servers import SERVER_CLASSES

SERVER = "import json\nimport pathlib\n" + SERVER_CLASSES

CONVERSATIONS = [
    [
        ("Name three colours of the rainbow.", "Red, orange and yellow are three of them."),
        ("And two more?", "Green and blue."),
        ("Thanks. Which one is between them?", "Between green and blue there is no other."),
    ],
    [("Say hello in French.", "Bonjour! That is hello in French, said politely.")],
    [
        ("What is two plus two?", "Two plus two is four."),
        ("And times three?", "Four times three is twelve, a dozen."),
    ],
]


def count(base_url: str, text: str) -> int:
    r = httpx.post(base_url + "/tokenize", json={"content": text, "add_special": False})
    return len(r.json()["tokens"])


def sharegpt_records() -> list[dict]:
    return [
        {
            "id": str(i),
            "conversations": [
                m
                for user, reply in conv
                for m in ({"from": "human", "value": user}, {"from": "gpt", "value": reply})
            ],
        }
        for i, conv in enumerate(CONVERSATIONS)
    ]


def run_inner(pytester: pytest.Pytester, s, body: str) -> dict:
    pytester.makepyfile(
        SERVER + f"\nSERVER = Server({s.base_url!r}, {s.model!r}, Engine('llamacpp'))\n" + body
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-W", "error")
    result.assert_outcomes(passed=1)
    return json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]


@pytest.mark.parametrize("source", ["sharegpt", "datasets"])
def test_live_dataset_outputs_have_the_recorded_reply_lengths(
    pytester, llamacpp_server, tmp_path, source
) -> None:
    s = llamacpp_server
    if source == "sharegpt":
        path = tmp_path / "sharegpt.json"
        path.write_text(json.dumps(sharegpt_records()))
    else:
        datasets = pytest.importorskip("datasets")
        first = [conv[0] for conv in CONVERSATIONS]
        datasets.Dataset.from_dict(
            {"instruction": [u for u, _ in first], "output": [r for _, r in first]}
        ).save_to_disk(str(tmp_path / "saved"))
        path = tmp_path / "saved"
    extra = run_inner(
        pytester,
        s,
        f"""
def test_data(serve_bench):
    r = serve_bench(SERVER, dataset={str(path)!r}, num_prompts=3, concurrency=3)
    assert r.failed == 0 and r.completed == 3
""",
    )
    want = [count(s.base_url, conv[0][1]) for conv in CONVERSATIONS]
    rows = extra["requests"]
    assert sorted(r["max_tokens"] for r in rows) == sorted(want)
    assert all(r["output_tokens"] == r["max_tokens"] for r in rows)  # ignore_eos kept them
    assert extra["serving"]["dataset"] == str(path) and extra["serving"]["endpoint"] == "chat"


def test_live_multi_turn_sends_the_history_and_reuses_the_prefix(
    pytester, llamacpp_server, tmp_path
) -> None:
    s = llamacpp_server
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(sharegpt_records()))
    run_inner(
        pytester,
        s,
        f"""
def test_chat(serve_bench):
    r = serve_bench(SERVER, dataset={str(path)!r}, multi_turn=True, num_prompts=3,
                    concurrency=2)
    assert r.failed == 0 and r.completed == 6
    by = {{(x.spec.conversation, x.spec.turn): x for x in r.results}}
    assert sorted(by) == [(0, 1), (0, 2), (0, 3), (1, 1), (2, 1), (2, 2)]
    for (c, t), x in by.items():
        if t > 1:
            before = by[(c, t - 1)]
            # the whole history: the previous prompt, its generated reply and the new turn
            assert x.usage_prompt_tokens > before.usage_prompt_tokens + before.output_tokens
            # llama.cpp reused the earlier turns from its cache (timings.cache_n)
            assert x.server_timings["cache_n"] >= before.usage_prompt_tokens - 1
            assert x.start >= before.end
    assert r.metrics["ttft_ms.turn3"].spread["n"] == 1
    assert r.metrics["input_tokens.turn2"].value > r.metrics["input_tokens.turn1"].value
    out = {{f"{{c}}.{{t}}": x.output_tokens for (c, t), x in by.items()}}
    pathlib.Path("turns.json").write_text(json.dumps(out))
""",
    )
    got = json.loads((pytester.path / "turns.json").read_text())
    want = {
        f"{c}.{t}": count(s.base_url, reply)
        for c, conv in enumerate(CONVERSATIONS)
        for t, (_, reply) in enumerate(conv, 1)
    }
    assert got == want


def test_live_trace_replay_keeps_the_scaled_arrival_times(
    pytester, llamacpp_server, tmp_path
) -> None:
    s = llamacpp_server
    path = tmp_path / "mooncake.jsonl"
    rows = [(0, 40, 8), (600, 30, 6), (1500, 50, 4), (1500, 20, 5)]
    path.write_text(
        "\n".join(
            json.dumps({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": [0]})
            for t, i, o in rows
        )
    )
    run_inner(
        pytester,
        s,
        f"""
def test_trace(serve_bench):
    r = serve_bench(SERVER, trace_file={str(path)!r}, trace_time_scale=0.5, concurrency=None,
                    endpoint="completions")
    assert r.failed == 0 and r.completed == 4 and r.stopped_by == "trace"
    run = r.runs[0]
    sent = [[x.start - run.start, x.spec.arrival, x.usage_prompt_tokens, x.output_tokens]
            for x in sorted(r.results, key=lambda x: x.start)]
    pathlib.Path("sent.json").write_text(json.dumps(sent))
""",
    )
    sent = json.loads((pytester.path / "sent.json").read_text())
    assert [a for _, a, _, _ in sent] == [0.0, 0.3, 0.75, 0.75]  # ms / 1000 x 0.5
    for at, arrival, _, _ in sent:
        assert at == pytest.approx(arrival, abs=0.05)
    # each row's lengths: its input (plus llama.cpp's BOS token) and its output
    assert sorted((n_in, n_out) for _, _, n_in, n_out in sent) == sorted(
        (i + 1, o) for _, i, o in rows
    )
