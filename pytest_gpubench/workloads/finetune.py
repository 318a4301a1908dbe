"""LLM full fine-tuning with the transformers Trainer, as the seed repository ran it.

Seed settings (``FinetuneSettings`` defaults): google/gemma-3-270m-it, 3 epochs, batch 8,
max length 512, lr 5e-5, weight decay 0.01, constant schedule, fused AdamW, eager attention,
bf16 on GPU, an 80/20 split of ~1k instruction samples shaped like FoodExtract-1k. The seed used
TRL's ``SFTTrainer`` on chat messages; for pre-tokenised chat data that is the Trainer's own
training step with the loss on every token, which is what runs here (no TRL needed).

Recorded: train samples/s and tokens/s (from what was processed, per epoch), wall time per
epoch, total ``train()`` time (the seed's ``total_train_time``), peak memory, and evaluation
speed measured after training, outside the training time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.base import (
    InProcessWorkload,
    causal_lm,
    parameter_count,
    record_peak_memory,
    record_roofline,
)
from pytest_gpubench.workloads.extras import install_command
from pytest_gpubench.workloads.synthetic import WORDS, from_hub, synthetic_tokenizer
from pytest_gpubench.workloads.training import (
    TrainRun,
    record_epochs,
    record_evaluation,
    train_and_evaluate,
)


@dataclass
class FinetuneSettings:
    model: str = "google/gemma-3-270m-it"
    size: str = "full"  # "tiny": a CPU-sized config of the same architecture
    weights: str = "auto"
    epochs: int = 3
    batch_size: int = 8
    max_length: int = 512
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    samples: int = 1000  # FoodExtract-1k has ~1k samples
    eval_fraction: float = 0.2  # the seed's 80/20 split
    dataset: str | None = None  # a local dataset (datasets.load_from_disk folder, or a file)
    attn_implementation: str = "eager"
    optim: str = "adamw_torch_fused"
    # Not the seed's: concatenate the training samples' tokens into rows of exactly max_length
    # (no padding, loss on every token, attention across sample boundaries), so every step is
    # full-size work: shows the GPU's own training speed rather than the seed's padded batches.
    pack: bool = False
    evaluate: bool = True
    seed: int = 42
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None  # CPU intra-op threads; default 1 for tiny models on CPU


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def foodextract_like(n: int, seed: int = 42) -> list[list[dict[str, str]]]:
    """``n`` chat samples shaped like FoodExtract-1k: a text, then a short structured label.

    The lengths (10-150 words in, a 4-line label out) are chosen to resemble the dataset, not
    measured from it; the recorded tokens/s counts the tokens actually trained on either way.
    """
    rng = random.Random(seed)
    food = WORDS[: WORDS.index("yogurt") + 1]
    samples = []
    for _ in range(n):
        foods = rng.sample(food, rng.randint(0, 5))
        label = (
            f"food_or_drink: {int(bool(foods))}\ntags: {_words(rng, 1, 3)}\n"
            f"foods: {', '.join(foods)}\ndrinks: {_words(rng, 0, 2)}"
        )
        samples.append(
            [
                {"role": "user", "content": _words(rng, 10, 150) + "."},
                {"role": "assistant", "content": label},
            ]
        )
    return samples


def _to_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in row:
        return list(row["messages"])
    for prompt_key, answer_key in (
        ("sequence", "gpt-oss-120b-label-condensed"),  # FoodExtract-1k's own columns
        ("prompt", "completion"),
    ):
        if prompt_key in row and answer_key in row:
            return [
                {"role": "user", "content": str(row[prompt_key])},
                {"role": "assistant", "content": str(row[answer_key])},
            ]
    raise GpubenchError(
        f"local dataset rows need a 'messages' column, 'sequence' + "
        f"'gpt-oss-120b-label-condensed' (FoodExtract-1k) or 'prompt' + 'completion'; "
        f"got columns {sorted(row)}"
    )


def local_dataset(path: str) -> list[list[dict[str, str]]]:
    """Chat samples from a local dataset: a ``save_to_disk`` folder or a json/jsonl/csv/parquet."""
    try:
        import datasets
    except ImportError:
        raise GpubenchError(
            f"reading the local dataset {path} needs the datasets package: "
            f"{install_command('training')}"
        ) from None

    p = Path(path).expanduser()
    if p.is_dir():
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"]
    elif p.is_file():
        kind = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}.get(
            p.suffix
        )
        if kind is None:
            raise GpubenchError(f"dataset file {p} must be .json, .jsonl, .csv or .parquet")
        ds = datasets.load_dataset(kind, data_files=str(p), split="train")
    else:
        raise GpubenchError(f"dataset {p} does not exist")
    return [_to_messages(row) for row in ds]


def packed(rows: list[dict[str, list[int]]], length: int) -> list[dict[str, list[int]]]:
    """The rows' tokens end to end, cut into rows of exactly ``length`` (the rest dropped)."""
    stream = [t for r in rows for t in r["input_ids"]]
    return [
        {"input_ids": stream[i : i + length]} for i in range(0, len(stream) - length + 1, length)
    ]


class _Collator:
    """Pad to the longest sample of the batch (as TRL does); no loss on padding."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass
class FinetuneResult:
    epoch_seconds: list[float]
    epoch_samples: list[int]
    epoch_tokens: list[int]
    train_seconds: float | None
    eval_seconds: float | None
    eval_samples: int
    final_loss: float | None


class Finetune(InProcessWorkload[FinetuneSettings, FinetuneResult]):
    """One fine-tuning benchmark: data and tokenizer are ready on construction; ``run`` trains."""

    name = "finetune"

    def __init__(self, settings: FinetuneSettings) -> None:
        if settings.epochs < 1 or settings.batch_size < 1 or settings.samples < 2:
            raise GpubenchError(
                f"fine-tune needs epochs >= 1, batch_size >= 1 and samples >= 2, got "
                f"{settings.epochs}/{settings.batch_size}/{settings.samples}"
            )
        super().__init__(settings)
        self.tokenizer = self._tokenizer()
        chats = (
            local_dataset(settings.dataset)
            if settings.dataset
            else foodextract_like(settings.samples, settings.seed)
        )
        rng = random.Random(settings.seed)
        rng.shuffle(chats)
        n_eval = int(len(chats) * settings.eval_fraction)
        self.train_rows = [self._encode(c) for c in chats[n_eval:]]
        self.eval_rows = [self._encode(c) for c in chats[:n_eval]]
        if settings.pack:
            self.train_rows = packed(self.train_rows, settings.max_length)
            self.eval_rows = packed(self.eval_rows, settings.max_length)
            if not self.train_rows:
                raise GpubenchError(
                    f"pack=True: the training samples hold fewer than max_length="
                    f"{settings.max_length} tokens in all; use more samples or a shorter length"
                )

    def _tokenizer(self):
        if self.source.weights.weights == "hub":
            from transformers import AutoTokenizer

            tok = from_hub(AutoTokenizer.from_pretrained, self.source.model)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            return tok
        return synthetic_tokenizer()

    def _encode(self, chat: list[dict[str, str]]) -> dict[str, list[int]]:
        text = self.tokenizer.apply_chat_template(chat, tokenize=False)
        ids = self.tokenizer(
            text, add_special_tokens=False, truncation=True, max_length=self.settings.max_length
        )["input_ids"]
        return {"input_ids": ids}

    @property
    def samples_per_epoch(self) -> int:
        return len(self.train_rows)

    def _run(self, gpubench: Any) -> FinetuneResult:
        s = self.settings
        model = causal_lm(
            self.source, self.device, self.dtype, attn_implementation=s.attn_implementation
        )
        run = train_and_evaluate(
            gpubench,
            self,
            model,
            self.train_rows,
            self.eval_rows or None,
            _Collator(self.tokenizer.pad_token_id),
            weight_decay=s.weight_decay,
            lr_scheduler_type="constant",
            optim=s.optim,
        )
        result = FinetuneResult(
            run.log.seconds,
            run.log.samples,
            run.log.tokens,
            run.train_seconds,
            run.eval_seconds,
            len(self.eval_rows),
            run.training_loss,
        )
        self.record_info(
            gpubench,
            {
                "dataset": "local: " + str(s.dataset) if s.dataset else "synthetic",
                "packed": s.pack,
                "threads": self.threads,
                "parameters": parameter_count(model),
                "final_loss": result.final_loss,
            },
            train_samples=len(self.train_rows),
            eval_samples=len(self.eval_rows),
        )
        if run.train_seconds is not None:
            self._record(gpubench, run)
        del model
        memory.free()
        return result

    def _record(self, gpubench: Any, run: TrainRun) -> None:
        s, log = self.settings, run.log
        record_epochs(gpubench, log, s.epochs, "samples", run.train_seconds, tokens=True)
        if log.seconds:
            record_roofline(
                gpubench,
                self.source,
                tokens_per_s=sum(log.tokens) / sum(log.seconds),
                seq=s.max_length if s.pack else s.max_length // 2,
                training=True,
            )
        record_peak_memory(gpubench)
        record_evaluation(gpubench, run.eval_seconds, len(self.eval_rows), "samples")
