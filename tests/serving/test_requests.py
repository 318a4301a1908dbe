"""Workloads: exact token counts, seeded, images unique, prompt files checked."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.images import ImageSource
from pytest_gpubench.serving.requests import (
    TOKYO_PROMPT,
    RequestFactory,
    Workload,
    exact_text,
    read_prompt_file,
)
from pytest_gpubench.serving.tokens import LocalTokenizer, ServerTokenizer


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A real byte-level BPE tokenizer, trained here (nothing downloaded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["the quick brown fox jumps over the lazy dog " * 3, "people know water and time"]
    tok.train_from_iterator(corpus * 50, trainers.BpeTrainer(vocab_size=400, show_progress=False))
    path = tmp_path_factory.mktemp("tok")
    tok.save(str(path / "tokenizer.json"))
    return path


@pytest.mark.parametrize("n", [1, 7, 100, 1000])
def test_random_text_has_exactly_the_asked_token_count(bpe_dir, n) -> None:
    tok = LocalTokenizer(bpe_dir)
    text = exact_text(tok, n, np.random.default_rng(n))
    assert len(tok.encode(text)) == n


def test_server_tokenizer_counts_with_the_stubs_word_tokenizer(stub_server) -> None:
    """Against the stub's /tokenize (one token per word, llama.cpp's request shape), not a real
    engine's tokenizer: what this checks is the client's exact-count loop over that API."""
    tok = ServerTokenizer(stub_server.base_url, stub_server.model, "llamacpp")
    try:
        assert tok.style == "llamacpp"
        text = exact_text(tok, 50, np.random.default_rng(0))
        assert len(tok.encode(text)) == 50
    finally:
        tok.close()


def test_requests_are_seeded_and_vary_within_the_range_ratio(bpe_dir) -> None:
    tok = LocalTokenizer(bpe_dir)
    w = Workload(input_len=100, output_len=50, range_ratio=0.3, seed=7)
    a = RequestFactory(w, tok).take(20)
    b = RequestFactory(w, tok).take(20)
    assert a == b
    assert (
        RequestFactory(Workload(input_len=100, output_len=50, range_ratio=0.3, seed=8), tok).take(
            20
        )
        != a
    )
    ins = [r.input_tokens for r in a]
    outs = [r.max_tokens for r in a]
    assert min(ins) >= 70 and max(ins) <= 130 and len(set(ins)) > 5
    assert min(outs) >= 35 and max(outs) <= 65
    for r in a:
        assert len(tok.encode(r.body["prompt"])) == r.input_tokens
        assert r.body["ignore_eos"] is True


def test_each_draw_has_prompts_of_its_own_and_the_nonce_keeps_the_lengths(bpe_dir) -> None:
    """A sweep point, a re-measurement and a round are draws of their own: none re-sends a
    prompt of another (a server's prefix cache would serve it without prefill). A new nonce
    (the next pytest run) changes the text only: the lengths stay comparable with a baseline."""
    tok = LocalTokenizer(bpe_dir)
    w = Workload(input_len=60, output_len=20, range_ratio=0.3, prefix_len=10)

    def prompts(reqs):
        return {r.body["prompt"] for r in reqs}

    a = RequestFactory(w, tok, draw=(5, 0)).take(6)
    again = RequestFactory(w, tok, draw=(5, 0)).take(6)
    b = RequestFactory(w, tok, draw=(5, 1)).take(6)
    warm = RequestFactory(w, tok, stream=1, draw=(5, 0)).take(6)
    assert a == again  # reproducible from the draw
    assert not prompts(a) & prompts(b) and not prompts(a) & prompts(warm)
    run1 = RequestFactory(w, tok, draw=(5, 0), nonce=11).take(6)
    run2 = RequestFactory(w, tok, draw=(5, 0), nonce=12).take(6)
    assert not prompts(run1) & prompts(run2)
    assert [(r.input_tokens, r.max_tokens) for r in run1] == [
        (r.input_tokens, r.max_tokens) for r in run2
    ]
    assert len({r.input_tokens for r in run1}) > 1  # range_ratio varied them
    for r in run1 + run2:  # the shared prefix stays shared: a system prompt is cached by design
        assert tok.decode(tok.encode(r.body["prompt"])[:10]) == tok.decode(
            tok.encode(a[0].body["prompt"])[:10]
        )
        assert len(tok.encode(r.body["prompt"])) == r.input_tokens


def test_each_draw_has_images_of_its_own(bpe_dir) -> None:
    """A vision server caches images by content too (vLLM's multimodal cache): a later point
    or run must not re-send an earlier one's images."""
    tok = LocalTokenizer(bpe_dir)
    w = Workload(input_len=10, output_len=4, endpoint="chat", images=1,
                 image_buckets={(16, 16): 1.0})  # fmt: skip

    def urls(**draw):
        reqs = RequestFactory(w, tok, **draw).take(3)
        return {r.body["messages"][0]["content"][1]["image_url"]["url"] for r in reqs}

    assert urls(draw=(5, 0)) == urls(draw=(5, 0))
    assert not urls(draw=(5, 0)) & urls(draw=(5, 1))
    assert not urls(draw=(5, 0), nonce=1) & urls(draw=(5, 0), nonce=2)


def test_repeated_prompts_warning_only_beyond_the_shared_prefix() -> None:
    from pytest_gpubench.metrics.core import Metric
    from pytest_gpubench.serving.bench import repeated_prompts_message

    def frac(v):
        return Metric("cached_prompt_fraction", v, "fraction", False)

    random = {"input_len": 1000, "prefix_len": 0}
    assert "66%" in repeated_prompts_message(frac(0.66), random)
    assert repeated_prompts_message(frac(0.05), random) is None  # BOS / template tokens
    assert repeated_prompts_message(None, random) is None  # the server reports nothing
    # a 500-token system prompt before 1000 random tokens: a third is shared by design
    assert repeated_prompts_message(frac(0.40), {"input_len": 1000, "prefix_len": 500}) is None
    assert repeated_prompts_message(frac(0.50), {"input_len": 1000, "prefix_len": 500})
    for fixed in ("preset", "prompts_file", "dataset", "trace_file"):
        assert repeated_prompts_message(frac(0.9), {**random, fixed: "x"}) is None


def test_shared_prefix_is_identical_and_counted(bpe_dir) -> None:
    tok = LocalTokenizer(bpe_dir)
    w = Workload(input_len=40, output_len=8, prefix_len=25)
    reqs = RequestFactory(w, tok).take(5) + RequestFactory(w, tok, stream=1).take(2)
    prefixes = {tok.decode(tok.encode(r.body["prompt"])[:25]) for r in reqs}
    assert len(prefixes) == 1
    assert len({r.body["prompt"] for r in reqs}) == 7
    for r in reqs:
        assert r.input_tokens == 65 == len(tok.encode(r.body["prompt"]))


def test_chat_requests_carry_n_unique_images_from_the_buckets(bpe_dir) -> None:
    from PIL import Image

    tok = LocalTokenizer(bpe_dir)
    buckets = {(32, 48): 3.0, (64, 16): 1.0}
    w = Workload(input_len=10, output_len=4, endpoint="chat", images=2, image_buckets=buckets)
    reqs = RequestFactory(w, tok).take(10)
    urls = []
    for r in reqs:
        parts = r.body["messages"][0]["content"]
        assert parts[0]["type"] == "text"
        urls += [p["image_url"]["url"] for p in parts[1:]]
        assert r.images == 2
    assert len(urls) == 20 == len(set(urls))
    sizes = set()
    for url in urls:
        assert url.startswith("data:image/jpeg;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        sizes.add((img.height, img.width))
    assert sizes == set(buckets)


def test_image_draws_follow_the_weights() -> None:
    src = ImageSource({(8, 8): 9.0, (8, 16): 1.0}, fmt="png", seed=1)
    src.next_urls(200)
    assert 160 <= src.drawn[(8, 8)] <= 196


def test_tokyo_preset_is_the_seed_prompt() -> None:
    w = Workload(preset="tokyo", endpoint="chat", output_len=512, ignore_eos=False)
    (req,) = RequestFactory(w, None).take(1)
    assert req.body["messages"] == [{"role": "user", "content": TOKYO_PROMPT}]
    assert "ignore_eos" not in req.body and req.max_tokens == 512
    assert TOKYO_PROMPT.startswith("Design a weekend trip itinerary for two people visiting Tokyo")


def test_prompt_file_lines_become_requests_in_order(tmp_path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        + "\n\n"
        + json.dumps({"prompt": "once upon"})
        + "\n"
    )
    reqs = RequestFactory(Workload(prompts_file=f, ignore_eos=False), None).take(3)
    assert [r.endpoint for r in reqs] == ["chat", "completions", "chat"]
    assert [r.max_tokens for r in reqs] == [5, 300, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "p.jsonl:1: not JSON"),
        ('{"text": "x"}\n', 'p.jsonl:1: each line needs "messages"'),
        ('{"prompt": "x", "max_tokens": 0}\n', "p.jsonl:1: max_tokens must be a positive"),
        ("\n", "holds no prompts"),
    ],
)
def test_bad_prompt_files_name_file_and_line(tmp_path, content, message) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(content)
    with pytest.raises(GpubenchError, match=message):
        read_prompt_file(f)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": 1}, "images need endpoint='chat'"),
        ({"preset": "paris"}, "unknown preset 'paris'; known: tokyo"),
        ({"range_ratio": 1.5}, "range_ratio must be in"),
        ({"endpoint": "embeddings"}, "endpoint must be"),
    ],
)
def test_workload_mistakes_are_clear(kwargs, message) -> None:
    with pytest.raises(GpubenchError, match=message):
        Workload(**kwargs)
