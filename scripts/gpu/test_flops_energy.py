"""Counted FLOPs, MFU and energy per unit at full size on a real GPU, in a few minutes.

The full benchmarks take long (100 images, 10 detection epochs); these run the same full-size
models briefly, so the FLOP counts, MFU and NVML energy per image can be checked on a GPU
machine in one call (see README.md):

    . scripts/gpu/setup_device.sh
    python3 -m pytest -p pytest_gpubench.plugin --device=auto \
      --benchmark-json=$OUT/flops-energy.json scripts/gpu/test_flops_energy.py -v
"""

import time

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


@pytest.mark.parametrize("model", ["black-forest-labs/FLUX.2-klein-4B", "Tongyi-MAI/Z-Image-Turbo"])
def test_diffusion_full_size(gpubench, diffusion_workload, model):
    t0 = time.perf_counter()
    result = diffusion_workload(model=model, images=5, warmups=2).run(gpubench)
    print(model, "flops:", result.flops, f"run {time.perf_counter() - t0:.1f} s")
    assert result.flops is not None and result.flops.per_step > 0
    assert "mfu_pct" in gpubench.metrics and "energy_per_image_j" in gpubench.metrics
    counting_cost(model)


def counting_cost(model):
    """Seconds of one plain image and of one counted image on the resident pipeline."""
    from pytest_gpubench.workloads import flops
    from pytest_gpubench.workloads.diffusion import Diffusion, DiffusionSettings

    wl = Diffusion(DiffusionSettings(model=model))
    pipe, kwargs = wl._pipeline(), wl.call_kwargs()
    for counted in (False, True):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        if counted:
            flops.count_call(pipe, prompt="a cat", parts=flops.pipeline_parts(pipe), **kwargs)
        else:
            pipe(prompt="a cat", **kwargs)
        torch.cuda.synchronize()
        print(model, "counted" if counted else "plain", f"{time.perf_counter() - t0:.3f} s")


def test_detection_full_size(gpubench, detection_workload):
    workload = detection_workload(model="PekingU/rtdetr_v2_r50vd", images=250, epochs=2)
    t0 = time.perf_counter()
    workload.run(gpubench)
    print("detection", gpubench.benchmark.extra_info["workload"]["facts"]["flops"])
    print(f"run {time.perf_counter() - t0:.1f} s")
    assert "mfu_pct" in gpubench.metrics and "energy_per_image_j" in gpubench.metrics
    from pytest_gpubench.workloads.detection import _Collator

    model, collator = workload._model(), _Collator(workload.settings.image_size)
    for _ in range(2):  # the second count is the one without first-call costs
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        workload.count_step(model, collator)
        torch.cuda.synchronize()
        print(f"detection count_step {time.perf_counter() - t0:.3f} s")
