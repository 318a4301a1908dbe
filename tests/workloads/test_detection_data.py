"""The detection data paths give the model the same kind of batch the seed's collator does."""

from __future__ import annotations

import pytest

from plumbing.ci import require_module

require_module("torch", "the workloads need torch (the test extra installs it)")


def test_preprocessed_rows_are_the_collators_output() -> None:
    import torch

    from pytest_gpubench.workloads.detection import (
        SyntheticDetection,
        _Collator,
        _Preprocessed,
        _stack,
    )

    data = SyntheticDetection(3, (64, 48), labels=5, max_boxes=3, seed=1)
    collator = _Collator(64)
    direct = collator([data[0], data[1]])
    stacked = _stack([_Preprocessed(data, collator)[i] for i in (0, 1)])
    assert torch.equal(direct["pixel_values"], stacked["pixel_values"])
    for a, b in zip(direct["labels"], stacked["labels"], strict=True):
        assert torch.equal(a["boxes"], b["boxes"])
        assert torch.equal(a["class_labels"], b["class_labels"])


def test_device_batches_have_the_processors_shapes_and_formats() -> None:
    import torch

    from pytest_gpubench.workloads.detection import _DeviceBatches

    make = _DeviceBatches(64, labels=5, max_boxes=3, device=torch.device("cpu"))
    batch = make([{"index": 7}, {"index": 8}])
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    assert batch["pixel_values"].min() >= 0 and batch["pixel_values"].max() < 1
    for label in batch["labels"]:
        boxes = label["boxes"]
        assert 1 <= boxes.shape[0] <= 3 and boxes.shape[1] == 4
        cx, cy, w, h = boxes.unbind(1)
        # (cx, cy, w, h) normalised, inside the image
        assert bool(((cx - w / 2) >= 0).all() and ((cx + w / 2) <= 1).all())
        assert bool(((cy - h / 2) >= 0).all() and ((cy + h / 2) <= 1).all())
        assert int(label["class_labels"].max()) < 5
    again = make([{"index": 7}, {"index": 8}])
    assert torch.equal(batch["pixel_values"], again["pixel_values"])  # same work every run


def test_unknown_data_path_is_one_clear_error() -> None:
    from pytest_gpubench.errors import GpubenchError
    from pytest_gpubench.workloads.detection import Detection, DetectionSettings

    with pytest.raises(GpubenchError, match="data='gpu' must be one of collate, workers"):
        Detection(DetectionSettings(size="tiny", data="gpu"))
