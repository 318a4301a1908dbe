"""Every in-process workload runs on CPU with its tiny config and records its metrics.

Real pytest runs (pytester) of real workloads: transformers Trainer fine-tuning and detection
training, ``generate()``, and the diffusers pipelines, all with random weights built from the
tiny configs, so nothing is downloaded. Values are checked for sense, not for speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plumbing.ci import require_module

require_module("torch", "the workloads need torch (the test extra installs it)")

WORKLOADS = """
import json
import pytest

def test_finetune(gpubench, finetune_workload):
    wl = finetune_workload(size="tiny", samples=30, epochs=2, batch_size=4, max_length=64)
    result = wl.run(gpubench)
    assert result.epoch_samples == [wl.samples_per_epoch] * 2

def test_finetune_local_dataset(gpubench, finetune_workload, tmp_path):
    rows = [{"sequence": f"a photo of rice and fish number {i}",
             "gpt-oss-120b-label-condensed": "food_or_drink: 1"} for i in range(10)]
    path = tmp_path / "food.jsonl"
    path.write_text("\\n".join(json.dumps(r) for r in rows))
    wl = finetune_workload(size="tiny", dataset=str(path), epochs=1, batch_size=4)
    assert len(wl.train_rows) == 8
    wl.run(gpubench)

@pytest.mark.parametrize("mode", ["eager", "static", "loop"])
def test_generate(gpubench, generate_workload, mode):
    generate_workload(
        model="meta-llama/Llama-3.1-8B-Instruct", size="tiny", batch_size=2, mode=mode,
        input_len=16, output_len=8, rounds=2,
    ).run(gpubench)

def test_detection(gpubench, detection_workload):
    wl = detection_workload(
        size="tiny", images=10, epochs=2, batch_size=4, image_size=64,
        source_size=(64, 48), max_boxes=2,
    )
    result = wl.run(gpubench)
    assert result.epoch_images == [8, 8]

@pytest.mark.parametrize("data", ["workers", "preprocessed", "device"])
def test_detection_data_path(gpubench, detection_workload, data):
    wl = detection_workload(
        size="tiny", images=10, epochs=2, batch_size=4, image_size=64,
        source_size=(64, 48), max_boxes=2, data=data, workers=1,
    )
    result = wl.run(gpubench)
    assert result.epoch_images == [8, 8]

def test_detection_coco_folder(gpubench, detection_workload, tmp_path):
    from PIL import Image
    images, anns = [], []
    for i in range(5):
        Image.new("RGB", (40, 30), (i * 40, 100, 50)).save(tmp_path / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 40, "height": 30})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 8],
                     "area": 80, "iscrowd": 0})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 0}, {"id": 1}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    wl = detection_workload(size="tiny", coco_dir=str(tmp_path), epochs=1, batch_size=2,
                            image_size=64, eval_fraction=0.2)
    assert len(wl.train_set) == 4
    wl.run(gpubench)

@pytest.mark.parametrize("model", ["black-forest-labs/FLUX.2-klein-4B", "Tongyi-MAI/Z-Image-Turbo"])
def test_diffusion(gpubench, diffusion_workload, model):
    result = diffusion_workload(
        model=model, size="tiny", images=3, warmups=1, height=32, width=32
    ).run(gpubench)
    assert len(result.seconds) == 3
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the workloads once in a child pytest process (module scope: pytester is per test,
    and the run takes ~30 s) and load its benchmark JSON."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("workloads")
    (folder / "test_workloads.py").write_text(WORKLOADS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--device=cpu",
            "-rA",
            "--benchmark-json=out.json",
            "test_workloads.py",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    data = json.loads((folder / "out.json").read_text())
    return {
        "stdout": proc.stdout,
        "benchmarks": {b["name"]: b["extra_info"] for b in data["benchmarks"]},
    }


def _metric(info: dict, name: str, unit: str, higher: bool) -> float:
    m = info["metrics"][name]
    assert (m["unit"], m["higher_is_better"]) == (unit, higher), (name, m)
    assert m["value"] > 0
    return m["value"]


def test_finetune_records_rates_epochs_and_memory(run: dict) -> None:
    info = run["benchmarks"]["test_finetune"]
    samples = _metric(info, "train_samples_per_s", "samples/s", True)
    tokens = _metric(info, "train_tokens_per_s", "tok/s", True)
    epoch = _metric(info, "epoch_time_s", "s", False)
    train = _metric(info, "train_time_s", "s", False)
    _metric(info, "peak_memory_gib", "GiB", False)
    _metric(info, "eval_samples_per_s", "samples/s", True)
    assert info["metrics"]["epoch_time_s"]["spread"]["rounds"] == 2  # both epochs were timed
    # 24 training samples per epoch, so the rate is samples over epoch time.
    assert samples == pytest.approx(24 / epoch, rel=1e-6)
    assert tokens > samples  # every sample has many tokens
    assert train >= 2 * epoch * 0.99  # train() holds both epochs (and its own set-up)
    wl = info["workload"]
    assert wl["source"] == {
        "model": "google/gemma-3-270m-it",
        "size": "tiny",
        "weights": "random",
        "weights_reason": "tiny config (no checkpoint exists)",
    }
    assert wl["facts"]["dataset"] == "synthetic"
    assert wl["settings"]["train_samples"] == 24


def test_finetune_reads_a_local_dataset(run: dict) -> None:
    info = run["benchmarks"]["test_finetune_local_dataset"]
    assert info["workload"]["facts"]["dataset"].startswith("local: ")
    assert "food.jsonl" in info["workload"]["facts"]["dataset"]
    _metric(info, "train_samples_per_s", "samples/s", True)


@pytest.mark.parametrize("mode", ["eager", "static", "loop"])
def test_generate_records_prefill_and_decode(run: dict, mode: str) -> None:
    info = run["benchmarks"][f"test_generate[{mode}]"]
    prefill = _metric(info, "prefill_tok_per_s", "tok/s", True)
    decode = _metric(info, "decode_tok_per_s", "tok/s", True)
    ttft = _metric(info, "time_to_first_token_s", "s", False)
    assert prefill == pytest.approx(2 * 16 / ttft, rel=1e-6)  # batch 2 x 16 prompt tokens
    assert info["metrics"]["decode_tok_per_s"]["spread"]["rounds"] == 2
    assert decode > 0
    facts = info["workload"]["facts"]
    assert facts["compiled"] is False  # no CUDA here: the static cache runs uncompiled
    assert facts["threads"] == 1


def test_detection_records_images_per_second(run: dict) -> None:
    info = run["benchmarks"]["test_detection"]
    rate = _metric(info, "train_images_per_s", "images/s", True)
    epoch = _metric(info, "epoch_time_s", "s", False)
    assert rate == pytest.approx(8 / epoch, rel=1e-6)
    _metric(info, "eval_images_per_s", "images/s", True)
    assert info["workload"]["facts"]["parameters"] > 0
    coco = run["benchmarks"]["test_detection_coco_folder"]
    assert coco["workload"]["facts"]["dataset"].startswith("coco: ")


@pytest.mark.parametrize("data", ["workers", "preprocessed", "device"])
def test_every_detection_data_path_trains_the_same_images(run: dict, data: str) -> None:
    info = run["benchmarks"][f"test_detection_data_path[{data}]"]
    assert info["workload"]["facts"]["data_path"] == data
    assert _metric(info, "train_images_per_s", "images/s", True) > 0
    assert info["workload"]["settings"]["train_images"] == 8


@pytest.mark.parametrize(
    ("model", "pipeline", "steps"),
    [
        ("black-forest-labs/FLUX.2-klein-4B", "Flux2KleinPipeline", 4),
        ("Tongyi-MAI/Z-Image-Turbo", "ZImagePipeline", 9),
    ],
)
def test_diffusion_records_seconds_per_image(
    run: dict, model: str, pipeline: str, steps: int
) -> None:
    info = run["benchmarks"][f"test_diffusion[{model}]"]
    spi = _metric(info, "seconds_per_image", "s/image", False)
    per_min = _metric(info, "images_per_min", "images/min", True)
    assert per_min == pytest.approx(60 / spi, rel=1e-6)
    assert _metric(info, "steps_per_s", "steps/s", True) == pytest.approx(steps / spi, rel=1e-6)
    assert info["metrics"]["seconds_per_image"]["spread"]["rounds"] == 3
    wl = info["workload"]
    assert wl["facts"]["pipeline"] == pipeline
    assert wl["settings"]["steps"] == steps  # the model card's steps by default
    assert wl["facts"]["distinct_prompts"] > 1


def test_results_table_lists_every_workload(run: dict) -> None:
    out = run["stdout"]
    assert "gpubench results on cpu" in out
    for metric in (
        "train_samples_per_s",
        "train_images_per_s",
        "decode_tok_per_s",
        "seconds_per_image",
    ):
        assert metric in out


def test_package_ships_no_weights() -> None:
    """Everything above ran from configs: the catalog and tiny configs are all there is."""
    root = Path(__file__).resolve().parents[2] / "pytest_gpubench"
    heavy = [p for p in root.rglob("*") if p.suffix in {".safetensors", ".bin", ".gguf", ".pt"}]
    assert heavy == []
