"""Tokenizers for building prompts of an exact token length, never used while timing.

``LocalTokenizer`` reads a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package);
``ServerTokenizer`` asks the server's own ``/tokenize`` and ``/detokenize`` (llama.cpp's and
vLLM's request shapes), so the count is the one the engine will see even when no tokenizer
is on this machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from pytest_gpubench.engines import Engine, find_engine
from pytest_gpubench.errors import GpubenchError

#: the ``/tokenize`` request shapes this module speaks (``Engine.tokenize_style``)
STYLES = ("llamacpp", "vllm")


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class LocalTokenizer:
    """A ``tokenizer.json`` file, or a model folder holding one."""

    def __init__(self, path: str | Path) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise GpubenchError(
                "a local tokenizer needs the 'tokenizers' package: "
                "pip install 'pytest-gpubench[serving]'"
            ) from None
        p = Path(path).expanduser()
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise GpubenchError(
                f"tokenizer {path!s}: no tokenizer.json there; give a model folder that has one, "
                "or leave tokenizer unset to use the server's /tokenize"
            )
        self._tok = HFTokenizer.from_file(str(file))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)


class ServerTokenizer:
    """The server's tokenizer over HTTP: llama.cpp (``content``) or vLLM (``prompt``) shape."""

    def __init__(
        self,
        base_url: str,
        model: str,
        engine: str | Engine | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``engine`` (an Engine or its name) says which request shape its ``/tokenize``
        takes; unknown, both shapes are tried. ``headers`` go with every request (an API key)."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.client = httpx.Client(timeout=60.0, headers=dict(headers or {}))
        known = find_engine(engine) if isinstance(engine, str) else engine
        if known is not None:
            order = [known.tokenize_style] if known.tokenize_style else []
        else:
            order = list(STYLES)
        engine_label = getattr(known, "name", None) or engine
        self.style = ""
        lost: list[httpx.TransportError] = []  # no answer at all (refused, reset, timed out)
        for style in order:
            try:
                if self._encode(style, "hello world"):
                    self.style = style
                    break
            except httpx.TransportError as exc:
                lost.append(exc)
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                continue
        if not self.style:
            self.client.close()
            if lost and len(lost) == len(order):
                raise GpubenchError(
                    f"the server at {self.base_url} is not answering ({type(lost[-1]).__name__}"
                    f": {lost[-1]}): it has died or was stopped; see its log"
                )
            raise GpubenchError(
                f"server {self.base_url} has no usable /tokenize endpoint (engine "
                f"{engine_label or 'unknown'}); pass tokenizer='path/to/model' with a "
                "tokenizer.json to count prompt tokens locally"
            )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(self.base_url + path, json=body)
        resp.raise_for_status()
        return resp.json()

    def _encode(self, style: str, text: str) -> list[int]:
        if style == "llamacpp":
            ids = self._post("/tokenize", {"content": text, "add_special": False})["tokens"]
        else:
            body = {"model": self.model, "prompt": text, "add_special_tokens": False}
            ids = self._post("/tokenize", body)["tokens"]
        return [int(i) for i in ids]

    def encode(self, text: str) -> list[int]:
        return self._encode(self.style, text)

    def decode(self, ids: list[int]) -> str:
        if self.style == "llamacpp":
            return self._post("/detokenize", {"tokens": ids})["content"]
        return self._post("/detokenize", {"model": self.model, "tokens": ids})["prompt"]

    def close(self) -> None:
        self.client.close()
