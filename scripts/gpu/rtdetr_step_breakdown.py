"""Where an RT-DETRv2 training step's time goes on the GPU machine (issue 15, part 3).

Full-size RT-DETRv2 r50vd, random weights, bf16 autocast, AdamW, batches made on the device
(workloads/detection.py ``_DeviceBatches``: no data path at all). Per batch size: wall time per
step, GPU busy (NVML), and the time inside transformers' ``RTDetrHungarianMatcher`` (its cost
matrix goes to the CPU for scipy's ``linear_sum_assignment``, a host sync per step, and the
other loss terms' syncs follow it), measured by wrapping the matcher with a synced clock.

    python3 scripts/gpu/rtdetr_step_breakdown.py $OUT/rtdetr-steps.json
"""

from __future__ import annotations

import json
import sys
import time

import torch

from pytest_gpubench.bench.telemetry import Sampler
from pytest_gpubench.workloads.detection import Detection, DetectionSettings, _DeviceBatches


def measure(batch: int, steps: int, size: str, image: int, spent: dict) -> dict:
    """Steps of one batch size: wall time, matcher time and NVML's busy figure."""
    wl = Detection(
        DetectionSettings(
            size=size, data="device", batch_size=batch, image_size=image, images=batch * 2
        )
    )
    model = wl._model().train()
    cuda = wl.device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    make = _DeviceBatches(image, wl.num_labels, 8, wl.device)

    def step(i: int) -> None:
        b = make([{"index": i * batch + j} for j in range(batch)])
        with torch.autocast(wl.device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(3):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    spent["s"] = 0.0
    with Sampler() as sampler:
        t0 = time.monotonic()
        for i in range(steps):
            step(100 + i)
        if cuda:
            torch.cuda.synchronize()
        t1 = time.monotonic()
    tel = sampler.telemetry.window(t0, t1)
    per_step = (t1 - t0) / steps
    out = {
        "ms_per_step": 1000 * per_step,
        "images_per_s": batch / per_step,
        "matcher_ms_per_step": 1000 * spent["s"] / steps,
        "matcher_share": spent["s"] / (t1 - t0),
        "gpu_util_pct": tel.get("gpu_util_pct"),
        "avg_power_w": tel.get("avg_power_w"),
    }
    print(batch, {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()})
    return out


def main(out_path: str, batches=(8, 32, 64), steps: int = 12, size: str = "full") -> None:
    from transformers.loss import loss_rt_detr

    matcher = loss_rt_detr.RTDetrHungarianMatcher
    original = matcher.forward
    spent = {"s": 0.0}

    def timed(self, *a, **k):
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        t0 = time.perf_counter()
        out = original(self, *a, **k)
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        spent["s"] += time.perf_counter() - t0
        return out

    matcher.forward = timed
    image = 640 if size == "full" else 64
    results = {}
    for b in batches:
        results[b] = measure(b, steps, size, image, spent)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the last batch size's model and optimizer are gone
    with open(out_path, "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "tiny":
        main(sys.argv[1], batches=(2,), steps=2, size="tiny")
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "rtdetr-steps.json")
