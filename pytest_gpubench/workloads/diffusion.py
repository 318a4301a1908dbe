"""Image generation with diffusers: FLUX.2-klein-4B and Z-Image-Turbo, as the seed ran them.

Seed settings, from the model cards: FLUX.2-klein-4B (``Flux2KleinPipeline``) at 1024 x 1024,
4 steps, guidance 1.0, 5 warm-up images; Z-Image-Turbo (``ZImagePipeline``) at 1024 x 1024,
9 steps, guidance 0.0, 10 warm-ups; 100 measured images each, one prompt per image from varied
templates, seed ``seed + i``. ``--gpubench-images N`` (or ``images=N``) measures fewer.

With random weights the pipeline is assembled from its parts: the transformer and VAE from the
catalog's component configs, a Qwen3 text encoder of the published geometry, a synthetic
tokenizer and a flow-matching scheduler. The number of steps is fixed, so the work per image is
the same as with the real weights (the images are noise).

MFU: the first warm-up image (or, with no warm-ups, one extra untimed image) runs under
PyTorch's FLOP counter (``workloads.flops``), attributing FLOPs to the transformer (per
denoising step: its FLOPs over the steps, so a guidance scheme that runs it twice per step is
counted twice), the text encoder and the VAE decode. ``mfu_pct`` is images/s times all of an
image's FLOPs (the timed call runs all three) over the device's peak; the parts are in the
run's facts. Energy per image is the timed images' NVML energy over their number.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import torch

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.stats import rate_interval, spread_of, summarize
from pytest_gpubench.workloads import flops, memory
from pytest_gpubench.workloads.base import (
    InProcessWorkload,
    ModelSource,
    build_on,
    parameter_count,
    record_peak_memory,
)
from pytest_gpubench.workloads.synthetic import from_hub, synthetic_tokenizer


@dataclass(frozen=True)
class CardDefaults:
    pipeline: str
    steps: int
    guidance: float
    warmups: int
    resolution: int = 1024


# Each model card's default resolution and steps, as the seed benchmarked them.
CARDS: dict[str, CardDefaults] = {
    "black-forest-labs/flux.2-klein-4b": CardDefaults("Flux2KleinPipeline", 4, 1.0, 5),
    "tongyi-mai/z-image-turbo": CardDefaults("ZImagePipeline", 9, 0.0, 10),
}

# Qwen3-4B geometry: FLUX.2-klein's text encoder (reproduces its published 4,022,468,096
# parameters, see the catalog) and the Qwen3-4B-class encoder Z-Image's cap_feat_dim implies.
QWEN3_4B = {
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "tie_word_embeddings": True,
}


@dataclass
class DiffusionSettings:
    model: str = "black-forest-labs/FLUX.2-klein-4B"
    size: str = "full"
    weights: str = "auto"
    images: int = 100
    warmups: int | None = None  # None: the model card's (5 for FLUX.2-klein, 10 for Z-Image)
    steps: int | None = None  # None: the model card's
    guidance: float | None = None
    height: int | None = None  # None: the model card's 1024
    width: int | None = None
    seed: int = 42
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None


SUBJECTS = [
    "cat",
    "fox",
    "robot",
    "lighthouse",
    "teapot",
    "dragon",
    "violin",
    "bicycle",
    "owl",
    "castle",
    "orchid",
    "train",
]
PLACES = [
    "a misty forest",
    "a neon city at night",
    "a quiet beach",
    "a snowy mountain pass",
    "a desert market",
    "an old library",
    "a space station",
    "a flooded street",
]
STYLES = [
    "watercolor",
    "oil painting",
    "studio photograph",
    "pencil sketch",
    "3D render",
    "film still",
    "ukiyo-e print",
    "pixel art",
]
LIGHT = [
    "golden hour",
    "soft window light",
    "harsh noon sun",
    "candlelight",
    "overcast",
    "moonlight",
]
TEMPLATES = (
    "A {style} of a {subject} in {place}, {light}",
    "{subject} standing in {place}, {style}, {light} lighting",
    "Close-up {style} of a {subject}, {light}",
    "A wide shot of {place} with a small {subject}, {style}",
)


def prompt(i: int, seed: int) -> str:
    """The ``i``-th benchmark prompt: varied subject, place, style and light (deterministic)."""
    rng = random.Random(seed + i)
    return rng.choice(TEMPLATES).format(
        subject=rng.choice(SUBJECTS),
        place=rng.choice(PLACES),
        style=rng.choice(STYLES),
        light=rng.choice(LIGHT),
    )


def _clean(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _text_encoder(cfg: dict[str, Any], size: str, causal_lm: bool):
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    fields = _clean(cfg)
    fields.pop("architectures", None)
    fields.pop("model_type", None)
    fields.pop("dtype", None)
    if size == "full":
        fields = {**QWEN3_4B, **fields}
    config = Qwen3Config(**fields)
    return Qwen3ForCausalLM(config) if causal_lm else Qwen3Model(config)


def build_pipeline(source: ModelSource, device: torch.device, dtype: torch.dtype) -> Any:
    """The model's diffusers pipeline: the real checkpoint, or random weights from configs."""
    import diffusers

    card = CARDS[source.model.lower()]
    cls = getattr(diffusers, card.pipeline, None)
    if cls is None:
        raise GpubenchError(
            f"diffusers {diffusers.__version__} has no {card.pipeline} (needed for "
            f"{source.model}): pip install -U 'pytest-gpubench[diffusion]'"
        )
    if source.weights.weights == "hub":
        return from_hub(cls.from_pretrained, source.model, torch_dtype=dtype).to(device)
    cfg = source.config
    flux = card.pipeline == "Flux2KleinPipeline"
    with build_on(device, dtype):
        if flux:
            transformer = diffusers.Flux2Transformer2DModel(**_clean(cfg["transformer"]))
            vae = diffusers.AutoencoderKLFlux2(**_clean(cfg["vae"]))
            scheduler = diffusers.FlowMatchEulerDiscreteScheduler(
                shift=3.0, use_dynamic_shifting=True
            )
        else:
            transformer = diffusers.ZImageTransformer2DModel(**_clean(cfg["transformer"]))
            # FLUX.1-style VAE: latent scale and shift are part of its config (values do not
            # change the work; these are FLUX.1's, as Z-Image's VAE follows it).
            vae_cfg = {"scaling_factor": 0.3611, "shift_factor": 0.1159, **_clean(cfg["vae"])}
            vae = diffusers.AutoencoderKL(**vae_cfg)
            scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
        encoder = _text_encoder(cfg["text_encoder"], source.size, causal_lm=flux)
    return cls(
        scheduler=scheduler,
        vae=vae,
        text_encoder=encoder,
        tokenizer=synthetic_tokenizer(),
        transformer=transformer,
    )


@dataclass
class DiffusionResult:
    seconds: list[float]
    steps: int
    prompts: list[str]
    flops: flops.DiffusionFlops | None = None


class Diffusion(InProcessWorkload[DiffusionSettings, DiffusionResult]):
    """One image-generation benchmark: ``run`` times one pipeline call per image."""

    name = "diffusion"

    def __init__(self, settings: DiffusionSettings) -> None:
        s = settings
        key = s.model.lower()
        if key not in CARDS:
            raise GpubenchError(
                f"no image-generation workload for {s.model!r}; known: "
                "black-forest-labs/FLUX.2-klein-4B, Tongyi-MAI/Z-Image-Turbo"
            )
        self.card = CARDS[key]
        super().__init__(s)
        self.steps = s.steps or self.card.steps
        self.warmups = self.card.warmups if s.warmups is None else s.warmups
        self.guidance = self.card.guidance if s.guidance is None else s.guidance
        self.height = s.height or self.card.resolution
        self.width = s.width or self.card.resolution
        if s.images < 1 or self.warmups < 0 or self.steps < 1:
            raise GpubenchError("image generation needs images >= 1, warmups >= 0, steps >= 1")

    def _pipeline(self) -> Any:
        return self.resident_model(
            "diffusion", lambda: build_pipeline(self.source, self.device, self.dtype)
        )

    def call_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "height": self.height,
            "width": self.width,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
        }
        extra = self.source.config.get("max_sequence_length")
        if extra:
            kwargs["max_sequence_length"] = extra
        layers = self.source.config.get("text_encoder_out_layers")
        if layers:
            kwargs["text_encoder_out_layers"] = tuple(layers)
        return kwargs

    def _run(self, gpubench: Any) -> DiffusionResult:
        s = self.settings
        pipe = self._pipeline()
        pipe.set_progress_bar_config(disable=True)
        kwargs = self.call_kwargs()
        counter = itertools.count()
        prompts: list[str] = []
        counted: list[flops.CallFlops] = []

        def one_image() -> Any:
            i = next(counter)
            text = prompt(i, s.seed)
            prompts.append(text)
            generator = torch.Generator(device=self.device).manual_seed(s.seed + i)
            call = dict(prompt=text, generator=generator, **kwargs)
            if not counted:  # the first image, never a timed one: count its FLOPs
                out, flop_count = flops.count_call(pipe, parts=flops.pipeline_parts(pipe), **call)
                counted.append(flop_count)
                return out.images[0]
            return pipe(**call).images[0]

        untimed = self.warmups
        if not untimed:
            one_image()  # the count needs one untimed image
            untimed = 1
        memory.reset_peak()
        _, times = gpubench.time(one_image, rounds=s.images, warmup_rounds=self.warmups)
        per_image = flops.diffusion_flops(counted[0], self.steps)
        result = DiffusionResult(times, self.steps, prompts[untimed:], per_image)
        self.record_info(
            gpubench,
            {
                "pipeline": self.card.pipeline,
                "threads": self.threads,
                "transformer_parameters": parameter_count(pipe.transformer),
                "distinct_prompts": len(set(result.prompts)),
                "flops": per_image.as_dict(),
            },
            steps=self.steps,
            warmups=self.warmups,
            guidance=self.guidance,
            height=self.height,
            width=self.width,
        )
        if times:
            secs = summarize(times)
            gpubench.metric(
                "seconds_per_image",
                secs.mean,
                "s/image",
                False,
                spread=spread_of(secs),
                headline=True,
                description=f"{self.width}x{self.height}, {self.steps} steps, per image",
            )
            per_min = summarize([60.0 / t for t in times])
            low, high = rate_interval(60.0, secs)
            gpubench.metric(
                "images_per_min",
                60.0 / secs.mean,
                "images/min",
                True,
                spread={**spread_of(per_min), "ci95_low": low, "ci95_high": high},
                headline=True,
            )
            gpubench.metric("steps_per_s", self.steps / secs.mean, "steps/s", True)
            gpubench.mfu(1.0 / secs.mean, per_image.per_image, dtype=flops.mfu_dtype(self.dtype))
            if "energy_j" in gpubench.telemetry:
                gpubench.metric(
                    "energy_per_image_j",
                    gpubench.telemetry["energy_j"] / len(times),
                    "J/image",
                    False,
                    headline=True,
                    description=f"NVML energy over the {len(times)} timed images, per image",
                )
            record_peak_memory(gpubench)
        return result
