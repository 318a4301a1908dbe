"""Object-detection training: RT-DETRv2 (r50vd) with the transformers Trainer, as the seed ran it.

Seed settings: PekingU/rtdetr_v2_r50vd, 10 epochs, batch 8, 640 px, ~1.1k images. The model is
built from the catalog config (random weights unless the checkpoint is cached; the seed
fine-tuned the COCO checkpoint, whose step costs the same). Data: synthetic random images with
random boxes, or a local COCO-format folder; either goes through the RT-DETR image processor
(resize to 640 x 640, rescale). By default that runs once over the dataset before the timed
training (``data="preprocessed"``): measured on an H200 (2026-12-01, 192 images x 2 epochs),
the seed's way, the processor in the collator inside the training process, left the GPU 10%
busy at 13.2 images/s, the loop waiting 22% of its time for batches; pre-processed, 30.9
images/s with 7% waiting (DataLoader workers 28.6, tensors made on the GPU 35.2). A GPU
comparison should not depend on how many host cores feed the processor.

The seed's ``samples_per_second = batch_size * epochs * (1 - test_split) / time`` was not a
rate of anything; here images/s is images trained on (counted per batch) over the time spent in
training epochs, and evaluation runs after training, timed on its own.

MFU: one training step (forward, loss and backward) on one real batch is counted with
PyTorch's FLOP counter before training (``workloads.flops``: RT-DETR has no FLOPs-per-image
formula), and images/s times that step's FLOPs per image is the achieved rate. Energy per image
is NVML's counter over the same timed epochs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.workloads import flops, memory
from pytest_gpubench.workloads.base import InProcessWorkload, parameter_count, record_peak_memory
from pytest_gpubench.workloads.training import (
    record_epochs,
    record_evaluation,
    train_and_evaluate,
)

#: How images reach the model. ``collate``: the seed's way, the image processor in the collator
#: in the training process; ``workers``: the same in DataLoader worker processes with pinned
#: memory; ``preprocessed``: the processor runs once over the dataset before training
#: (untimed) and batches are stacked tensors; ``device``: synthetic tensors of the processor's
#: shapes made on the device per batch (no images, no processor: the GPU's own speed).
DATA_PATHS = ("collate", "workers", "preprocessed", "device")


@dataclass
class DetectionSettings:
    model: str = "PekingU/rtdetr_v2_r50vd"
    size: str = "full"
    weights: str = "auto"
    epochs: int = 10
    batch_size: int = 8
    image_size: int = 640  # the processor's square input, as the seed trained at
    images: int = 1100  # the seed's dataset has ~1.1k images
    eval_fraction: float = 0.2
    source_size: tuple[int, int] = (640, 480)  # synthetic images' width x height before resizing
    max_boxes: int = 8
    coco_dir: str | None = None  # a local COCO-format folder instead of synthetic images
    data: str = "preprocessed"  # the data path, one of DATA_PATHS (see there)
    workers: int | None = None  # DataLoader workers for data="workers"; None: up to 8
    learning_rate: float = 1e-4
    evaluate: bool = True
    seed: int = 42
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None  # CPU intra-op threads; default 1 for tiny models on CPU


class SyntheticDetection(torch.utils.data.Dataset):
    """Random RGB images, each with 1..max_boxes random boxes (COCO annotation format)."""

    def __init__(
        self, n: int, size: tuple[int, int], labels: int, max_boxes: int, seed: int
    ) -> None:
        self.n, self.size, self.labels, self.max_boxes, self.seed = n, size, labels, max_boxes, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed + i)
        w, h = self.size
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        anns = []
        for _ in range(int(rng.integers(1, self.max_boxes + 1))):
            bw, bh = rng.uniform(0.05, 0.5) * w, rng.uniform(0.05, 0.5) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(
                {
                    "bbox": [float(x), float(y), float(bw), float(bh)],
                    "category_id": int(rng.integers(0, self.labels)),
                    "area": float(bw * bh),
                    "iscrowd": 0,
                }
            )
        return {"image": image, "target": {"image_id": i, "annotations": anns}}


class CocoFolder(torch.utils.data.Dataset):
    """A local COCO-format folder: one annotation JSON and the images it names."""

    def __init__(self, folder: str) -> None:
        root = Path(folder).expanduser()
        found = sorted(root.glob("*.json")) if root.is_dir() else []
        if not found:
            raise GpubenchError(
                f"coco_dir {root} must be a folder holding a COCO annotation .json and its images"
            )
        data = json.loads(found[0].read_text())
        self.root = root
        self.images = data["images"]
        self.by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data.get("annotations", []):
            self.by_image.setdefault(ann["image_id"], []).append(ann)
        self.num_labels = max((c["id"] for c in data.get("categories", [])), default=0) + 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        info = self.images[i]
        image = np.asarray(Image.open(self.root / info["file_name"]).convert("RGB"))
        anns = self.by_image.get(info["id"], [])
        return {"image": image, "target": {"image_id": info["id"], "annotations": anns}}


class _Collator:
    """The RT-DETR image processor on each batch: resize, rescale, boxes to (cx, cy, w, h)."""

    def __init__(self, size: int) -> None:
        from transformers.models.rt_detr.image_processing_pil_rt_detr import (
            RTDetrImageProcessorPil,
        )

        self.processor = RTDetrImageProcessorPil(size={"height": size, "width": size})

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.processor(
            images=[r["image"] for r in rows],
            annotations=[r["target"] for r in rows],
            return_tensors="pt",
        )
        return {"pixel_values": batch["pixel_values"], "labels": batch["labels"]}


class _Preprocessed(torch.utils.data.Dataset):
    """The processor's output for every image, computed once (before the timed run)."""

    def __init__(self, data: torch.utils.data.Dataset, collator: _Collator) -> None:
        self.rows = []
        for i in range(len(data)):
            batch = collator([data[i]])
            self.rows.append(
                {"pixel_values": batch["pixel_values"][0], "labels": batch["labels"][0]}
            )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _stack(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pixel_values": torch.stack([r["pixel_values"] for r in rows]),
        "labels": [r["labels"] for r in rows],
    }


class _DeviceBatches:
    """Batches made on the device: pixel values in [0, 1) at the processor's size and 1..max
    random boxes in its (cx, cy, w, h) normalised format. Seeded per batch from the rows'
    indices, so the work is the same every run."""

    def __init__(self, size: int, labels: int, max_boxes: int, device: torch.device) -> None:
        self.size, self.labels, self.max_boxes, self.device = size, labels, max_boxes, device

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        seed = int(rows[0]["index"])
        g = torch.Generator(device=self.device).manual_seed(seed)
        counts = torch.randint(
            1, self.max_boxes + 1, (len(rows),), generator=torch.Generator().manual_seed(seed)
        )
        n, d = len(rows), self.device
        pixels = torch.rand((n, 3, self.size, self.size), generator=g, device=d)
        labels = []
        for k in counts.tolist():  # box counts drawn on the CPU: no device sync
            wh = torch.rand((k, 2), generator=g, device=d) * 0.45 + 0.05
            centre = wh / 2 + torch.rand((k, 2), generator=g, device=d) * (1 - wh)
            labels.append(
                {
                    "class_labels": torch.randint(0, self.labels, (k,), generator=g, device=d),
                    "boxes": torch.cat([centre, wh], dim=1),
                }
            )
        return {"pixel_values": pixels, "labels": labels}


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": i}


def _split(ds: torch.utils.data.Dataset, eval_fraction: float, seed: int):
    n_eval = int(len(ds) * eval_fraction)
    g = torch.Generator().manual_seed(seed)
    train, val = torch.utils.data.random_split(ds, [len(ds) - n_eval, n_eval], generator=g)
    return train, val


@dataclass
class DetectionResult:
    epoch_seconds: list[float]
    epoch_images: list[int]
    train_seconds: float | None
    eval_seconds: float | None
    eval_images: int


class Detection(InProcessWorkload[DetectionSettings, DetectionResult]):
    """One detection-training benchmark: the data split is ready on construction; ``run`` trains."""

    name = "detection"

    def __init__(self, settings: DetectionSettings) -> None:
        s = settings
        if min(s.epochs, s.batch_size, s.image_size, s.max_boxes) < 1 or s.images < 2:
            raise GpubenchError(
                "detection needs epochs, batch_size, image_size, max_boxes >= 1 and images >= 2"
            )
        if s.data not in DATA_PATHS:
            raise GpubenchError(f"data={s.data!r} must be one of {', '.join(DATA_PATHS)}")
        if s.data == "device" and s.coco_dir:
            raise GpubenchError("data='device' makes synthetic tensors; it cannot read coco_dir")
        super().__init__(s)
        if s.coco_dir:
            data: torch.utils.data.Dataset = CocoFolder(s.coco_dir)
            self.num_labels = data.num_labels
        else:
            self.num_labels = int(self.source.config.get("num_labels", 80))
            data = SyntheticDetection(
                s.images, tuple(s.source_size), self.num_labels, s.max_boxes, s.seed
            )
        if s.data == "device":
            data = _Indices(s.images)
        self.train_set, self.eval_set = _split(data, s.eval_fraction, s.seed)

    def _data(self) -> tuple[Any, Any, Any, dict[str, Any]]:
        """(train set, eval set, collator, TrainingArguments) for the settings' data path."""
        s = self.settings
        if s.data == "device":
            collate = _DeviceBatches(s.image_size, self.num_labels, s.max_boxes, self.device)
            # tensors already on the device: nothing to pin, no workers
            return self.train_set, self.eval_set, collate, {"dataloader_pin_memory": False}
        collator = _Collator(s.image_size)
        if s.data == "preprocessed":
            train, val = (
                _Preprocessed(self.train_set, collator),
                _Preprocessed(self.eval_set, collator),
            )
            return train, val, _stack, {"dataloader_pin_memory": True}
        if s.data == "workers":
            workers = s.workers or max(1, min(8, (os.cpu_count() or 2) - 1))
            return (
                self.train_set,
                self.eval_set,
                collator,
                {
                    "dataloader_num_workers": workers,
                    "dataloader_pin_memory": True,
                    "dataloader_persistent_workers": True,
                },
            )
        return self.train_set, self.eval_set, collator, {}

    def _model(self):
        from transformers import RTDetrV2Config, RTDetrV2ForObjectDetection

        if self.source.weights.weights == "hub":
            from pytest_gpubench.workloads.synthetic import from_hub

            model = from_hub(
                RTDetrV2ForObjectDetection.from_pretrained,
                self.source.model,
                num_labels=self.num_labels,
                ignore_mismatched_sizes=True,  # a new head for the dataset's classes, as the seed
            )
            return model.to(self.device)
        cfg = {
            k: v for k, v in self.source.config.items() if k not in ("model_type", "architectures")
        }
        cfg["num_labels"] = self.num_labels
        with torch.device(self.device):
            return RTDetrV2ForObjectDetection(RTDetrV2Config(**cfg))

    def _autocast(self) -> torch.dtype | None:
        """The mixed precision the Trainer trains in (``common_args``: bf16 on CUDA only)."""
        mixed = self.dtype == torch.bfloat16 and self.device.type == "cuda"
        return torch.bfloat16 if mixed else None

    def count_step(self, model: torch.nn.Module, collator: Any, data: Any) -> flops.StepFlops:
        """FLOPs of one training step on the first batch of the training set (untimed)."""
        n = min(self.settings.batch_size, len(data))
        batch = flops.to_device(collator([data[i] for i in range(n)]), self.device)
        return flops.training_step_flops(model, batch, n, autocast=self._autocast())

    def _run(self, gpubench: Any) -> DetectionResult:
        s = self.settings
        model = self._model()
        train, val, collator, loader_args = self._data()
        step = self.count_step(model, collator, train)
        run = train_and_evaluate(
            gpubench,
            self,
            model,
            train,
            val if len(val) else None,
            collator,
            remove_unused_columns=False,
            **loader_args,
        )
        result = DetectionResult(
            run.log.seconds,
            run.log.samples,
            run.train_seconds,
            run.eval_seconds,
            len(self.eval_set),
        )
        self.record_info(
            gpubench,
            {
                "dataset": f"coco: {s.coco_dir}" if s.coco_dir else "synthetic",
                "data_path": s.data,
                "threads": self.threads,
                "parameters": parameter_count(model),
                "flops": step.as_dict("image"),
            },
            train_images=len(self.train_set),
            eval_images=len(self.eval_set),
        )
        if run.train_seconds is not None:
            record_epochs(gpubench, run.log, s.epochs, "images", run.train_seconds)
            if sum(run.log.seconds) > 0:
                images_per_s = sum(run.log.samples) / sum(run.log.seconds)
                dtype = self._autocast() or torch.float32
                gpubench.mfu(images_per_s, step.per_sample, dtype=flops.mfu_dtype(dtype))
            record_peak_memory(gpubench)
            record_evaluation(gpubench, run.eval_seconds, len(self.eval_set), "images")
        del model
        memory.free()
        return result
