"""What the torchrun tests share: a tiny Llama config the ranks build random weights from."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")  # the test modules require it first
    folder = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    ).save_pretrained(folder)
    return folder
