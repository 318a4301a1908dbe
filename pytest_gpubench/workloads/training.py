"""Timing a transformers ``Trainer`` run honestly: per epoch, on samples actually processed.

The seed repository overrode ``on_epoch_end`` on its Trainer subclass, a hook the Trainer never
calls on itself, so no epoch was ever timed. Here a real ``TrainerCallback`` (which the Trainer
does call) stamps each epoch's start and end after a CUDA sync, and the trainer counts the
samples and tokens of every batch it trains on, so rates come from work done, not from the
dataset size times the epoch count. Where NVML has an energy counter, the same callback reads
it at the same two moments, so energy per sample covers exactly the work the rates count.
Evaluation is not in the training loop at all: the workloads evaluate after ``train()``
returns and time that separately.

``train_and_evaluate`` is the one Trainer run the fine-tune and detection workloads share; they
differ only in model, data, collator and a few ``TrainingArguments``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import Trainer, TrainerCallback

from pytest_gpubench import progress
from pytest_gpubench.bench.energy import EnergyCounter
from pytest_gpubench.metrics.stats import spread_of, summarize
from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.base import InProcessWorkload, WorkloadSettings, now


@dataclass
class EpochLog:
    seconds: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    energy_j: list[float | None] = field(default_factory=list)  # NVML counter; None: none


class Counts:
    """Samples and tokens trained on so far (incremented by ``CountingTrainer``).

    Token counts stay on the device until read (at epoch boundaries, which sync anyway), so
    counting adds no host-device synchronisation to a training step.
    """

    def __init__(self) -> None:
        self.samples = 0
        self.data_seconds = 0.0  # wall time the training loop spent waiting for its batches
        self._tokens = 0
        self._pending: list[torch.Tensor] = []

    def add_tokens(self, count: torch.Tensor) -> None:
        self._pending.append(count.detach())

    @property
    def tokens(self) -> int:
        if self._pending:
            self._tokens += int(torch.stack([t.to("cpu") for t in self._pending]).sum())
            self._pending.clear()
        return self._tokens


class EpochTimer(TrainerCallback):
    """Wall time, samples, tokens and energy of each epoch, read at the Trainer's own epoch
    events (the energy counter right after each clock read, so both span the same work)."""

    def __init__(
        self, device: torch.device, counts: Counts, energy: EnergyCounter | None = None
    ) -> None:
        self.device = device
        self.counts = counts
        self.energy = energy
        self.log = EpochLog()
        self._start: tuple[float, float | None, int, int] | None = None

    def _joules(self) -> float | None:
        return self.energy.read() if self.energy is not None else None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t0 = now(self.device)
        self._start = (t0, self._joules(), self.counts.samples, self.counts.tokens)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # the step on the run's progress line: a 415 s detection round is no longer silent
        progress.note(f"step {state.global_step}/{state.max_steps}, epoch {state.epoch or 0:.1f}")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._start is None:
            return
        t0, e0, s0, k0 = self._start
        self.log.seconds.append(now(self.device) - t0)
        e1 = self._joules()
        self.log.energy_j.append(e1 - e0 if e0 is not None and e1 is not None else None)
        self.log.samples.append(self.counts.samples - s0)
        self.log.tokens.append(self.counts.tokens - k0)
        self._start = None


def batch_size_of(inputs: dict[str, Any]) -> int:
    for key in ("input_ids", "pixel_values"):
        if key in inputs:
            return int(inputs[key].shape[0])
    raise KeyError("batch has neither input_ids nor pixel_values")


class _TimedBatches:
    """The Trainer's epoch iterator, timing every ``next()``: loading, collating and copying
    a batch to the device, as the training loop waits for it (the bound verdict's ``data``)."""

    def __init__(self, inner: Iterator[Any], counts: Counts) -> None:
        self.inner = inner
        self.counts = counts

    def __iter__(self) -> _TimedBatches:
        return self

    def __next__(self) -> Any:
        start = time.perf_counter()
        try:
            return next(self.inner)
        finally:
            self.counts.data_seconds += time.perf_counter() - start


class CountingTrainer(Trainer):
    """A Trainer that counts what each training step really processed, and how long it
    waited for the data."""

    def __init__(self, *args: Any, counts: Counts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts = counts

    def get_batch_samples(self, epoch_iterator: Iterator[Any], num_batches: int, device: Any):
        return super().get_batch_samples(
            _TimedBatches(epoch_iterator, self.counts), num_batches, device
        )

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        self.counts.samples += batch_size_of(inputs)
        mask = inputs.get("attention_mask")
        if mask is not None:
            self.counts.add_tokens(mask.sum())
        return super().training_step(model, inputs, *args, **kwargs)


def common_args(output_dir: str, device: torch.device, dtype: torch.dtype, **kwargs: Any):
    """TrainingArguments for a timed run: no checkpoints, no logging, no evaluation in the loop."""
    from transformers import TrainingArguments

    kwargs.setdefault("dataloader_num_workers", 0)
    return TrainingArguments(
        output_dir=output_dir,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device.type == "cpu",
        bf16=dtype == torch.bfloat16 and device.type == "cuda",
        **kwargs,
    )


class TrainingSettings(WorkloadSettings, Protocol):
    """The settings a Trainer workload has besides the common ones."""

    epochs: int
    batch_size: int
    learning_rate: float
    evaluate: bool
    seed: int


@dataclass
class TrainRun:
    """What one timed ``Trainer.train()`` and the evaluation after it measured."""

    log: EpochLog
    train_seconds: float | None  # None when nothing was timed (--benchmark-disable)
    eval_seconds: float | None  # None when not evaluated
    training_loss: float | None


def train_and_evaluate(
    gpubench: Any,
    workload: InProcessWorkload[TrainingSettings, Any],
    model: torch.nn.Module,
    train_dataset: Any,
    eval_dataset: Any | None,
    collator: Any,
    **training_args: Any,
) -> TrainRun:
    """Train ``model`` for the workload's epochs as one timed round, then evaluate it, timed.

    One round and no warm-up: training changes the model, so a second round would not be the
    same work; the per-epoch times give the spread instead. ``training_args`` are the
    workload's own ``TrainingArguments`` on top of epochs, batch size, learning rate and seed.
    """
    s = workload.settings
    device = workload.device
    counts = Counts()
    with (
        EnergyCounter() as energy,
        tempfile.TemporaryDirectory(prefix=f"gpubench-{workload.name}-") as out,
    ):
        timer = EpochTimer(device, counts, energy)
        args = common_args(
            out,
            device,
            workload.dtype,
            num_train_epochs=s.epochs,
            per_device_train_batch_size=s.batch_size,
            per_device_eval_batch_size=s.batch_size,
            learning_rate=s.learning_rate,
            seed=s.seed,
            **training_args,
        )
        trainer = CountingTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collator,
            callbacks=[timer],
            counts=counts,
        )
        memory.reset_peak()
        output, times = gpubench.time(trainer.train, rounds=1, warmup_rounds=0)
        if times:
            gpubench.data_wait_s = counts.data_seconds
        eval_seconds = None
        if s.evaluate and eval_dataset is not None:
            t0 = now(device)
            trainer.evaluate()
            eval_seconds = now(device) - t0
    return TrainRun(
        timer.log,
        times[0] if times else None,
        eval_seconds,
        float(output.training_loss) if output is not None else None,
    )


def record_epochs(
    gpubench: Any,
    log: EpochLog,
    epochs: int,
    unit: str,
    train_seconds: float | None,
    *,
    tokens: bool = False,
) -> None:
    """Record ``train_<unit>_per_s`` (and tokens/s), ``epoch_time_s`` and ``train_time_s``,
    and, where NVML counted energy, ``energy_per_<unit>_j`` (unit singular: ``images`` gives
    ``energy_per_image_j``) and ``energy_per_token_j``.

    Rates are work processed over time spent in epochs (total/total); their spread is over
    the per-epoch rates, so n is the number of epochs. Energy is over the same epochs.
    """
    if len(log.seconds) != epochs:
        raise RuntimeError(
            f"timed {len(log.seconds)} epochs of {epochs}: the Trainer did not call the epoch "
            "callback"
        )
    total_s = sum(log.seconds)
    series = [(f"train_{unit}_per_s", f"{unit}/s", log.samples)]
    if tokens:
        series.append(("train_tokens_per_s", "tok/s", log.tokens))
    for name, rate_unit, per_epoch in series:
        rates = summarize([n / t for n, t in zip(per_epoch, log.seconds, strict=True)])
        gpubench.metric(
            name,
            sum(per_epoch) / total_s,
            rate_unit,
            True,
            spread=spread_of(rates),
            headline=True,
            description=f"{sum(per_epoch)} {rate_unit.split('/')[0]} processed in {rates.n} epochs",
        )
    record_epoch_energy(gpubench, log, unit.removesuffix("s"), tokens=tokens)
    secs = summarize(log.seconds)
    gpubench.metric(
        "epoch_time_s",
        secs.mean,
        "s",
        False,
        spread=spread_of(secs),
        headline=True,
        description="wall time of one training epoch (no evaluation inside)",
    )
    if train_seconds is not None:
        gpubench.metric(
            "train_time_s",
            train_seconds,
            "s",
            False,
            spread={"rounds": 1},
            headline=True,
            description="the whole Trainer.train() call, set-up included (seed: total_train_time)",
        )


def record_epoch_energy(gpubench: Any, log: EpochLog, unit: str, *, tokens: bool = False) -> None:
    """``energy_per_<unit>_j`` (and ``energy_per_token_j``): NVML's energy over the timed
    epochs per sample processed in them. Nothing where any epoch has no energy reading."""
    if not log.energy_j or any(e is None for e in log.energy_j):
        return
    joules = sum(e for e in log.energy_j if e is not None)
    series = [(unit, log.samples)]
    if tokens:
        series.append(("token", log.tokens))
    for name, per_epoch in series:
        if sum(per_epoch):
            gpubench.metric(
                f"energy_per_{name}_j",
                joules / sum(per_epoch),
                f"J/{name}",
                False,
                headline=name == unit,
                description=f"{joules:.1f} J (NVML counter) over {sum(per_epoch)} {name}s "
                f"in {len(log.seconds)} timed epochs",
            )


def record_evaluation(gpubench: Any, seconds: float | None, count: int, unit: str) -> None:
    """``eval_time_s`` and ``eval_<unit>_per_s`` of the evaluation after training, if timed."""
    if seconds:
        gpubench.metric("eval_time_s", seconds, "s", False)
        gpubench.metric(f"eval_{unit}_per_s", count / seconds, f"{unit}/s", True)
