"""The plugin's markers by name and help text: what ``pytest --markers`` lists.

Apart from the parsing in ``markers.py`` because the plugin registers these lines in every
run, used or not, and the parser's imports (engines, the catalog) would make every run pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from pytest_gpubench.devices.profile import ProfileSet

CATEGORIES: dict[str, str] = {
    "llm_inference": "LLM serving/inference benchmark (select with -m llm_inference)",
    "vlm_inference": "vision-language model inference benchmark",
    "llm_training": "LLM training or fine-tuning benchmark",
    "image_generation": "image generation (diffusion) benchmark",
    "object_detection": "object detection training/inference benchmark",
}

GENERIC_MARKERS: dict[str, str] = {
    "device(*names)": "run this test only on the named device profile(s); skipped elsewhere "
    "with the reason. `pytest-gpubench devices` lists the names.",
    "needs_vram(gib, per_gpu=False)": "the test needs this much device memory in GiB; skipped "
    "with the reason when the selected device has less (per_gpu=True: on its largest single "
    "GPU, for engines that cannot split a model)",
    "gpus(n)": "the test needs n GPUs present (detected through NVML; with --gpubench-plan, "
    "the selected profile's count); skipped with the reason when fewer are there",
    "gpubench_tolerance(**metric_fraction)": "per-metric tolerance of the baseline regression "
    "check for this test, e.g. gpubench_tolerance(output_tok_s=0.1) for 10%",
    "model(model_id, quant=None, context=4096, concurrency=1, engine=None, kv_dtype=None, "
    "tensor_parallel=1, pipeline_parallel=1, data_parallel=1, split_mode=None, "
    "tensor_split=None)": "the model this benchmark runs (catalog id or alias, local "
    "config.json, or Hugging Face cache folder); its memory need (weights + KV cache + engine "
    "overhead) is computed at collection and the test is skipped with the breakdown when it "
    "does not fit, GPU by GPU when the engine spreads it (vLLM/SGLang tensor/pipeline/data "
    "parallel, llama.cpp split_mode and tensor_split). An explicit needs_vram overrides. "
    "`pytest-gpubench fit MODEL` shows the "
    "estimate.",
}


def marker_lines(profiles: ProfileSet) -> list[str]:
    """The ``markers`` ini lines: generic ones, categories, and one per device profile."""
    lines = [f"{sig}: {text}" for sig, text in GENERIC_MARKERS.items()]
    lines += [f"{name}: {text}" for name, text in CATEGORIES.items()]
    for name in profiles.names:
        profile = profiles.profiles[name]
        lines.append(
            f"{profile.marker_name}: run only on {profile.display_name} (same as device({name!r}))"
        )
    return lines


def plugin_marker_names(profiles: ProfileSet) -> set[str]:
    """Names of the markers that put a requirement on a test (categories only select)."""
    names = {signature.split("(")[0] for signature in GENERIC_MARKERS}
    return names | {profile.marker_name for profile in profiles.profiles.values()}


def uses_plugin_markers(item: pytest.Item, names: set[str]) -> bool:
    """Whether ``item`` carries any of ``names``: tests without one need no parsing."""
    return any(mark.name in names for mark in item.iter_markers())
