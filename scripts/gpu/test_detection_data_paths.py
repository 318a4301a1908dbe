"""RT-DETRv2 r50vd training on the GPU, one benchmark per data path (issue 15, part 3).

Which data path keeps the GPU busy: the seed's (image processor in the collator, in the
training process), DataLoader workers, pre-processed once, or synthetic tensors made on the
GPU. 240 synthetic images (192 trained on), 2 epochs, batch 8, 640 px: short enough to run all
four in one call, long enough (>= 10 s each) for NVML's utilisation to mean something.

    python3 -m pytest -p pytest_gpubench.plugin --device=auto \\
        scripts/gpu/test_detection_data_paths.py
"""

import pytest


@pytest.mark.object_detection
@pytest.mark.parametrize("data", ["collate", "workers", "preprocessed", "device"])
def test_rtdetr_v2_data_path(gpubench, detection_workload, data):
    workload = detection_workload(
        model="PekingU/rtdetr_v2_r50vd", images=240, epochs=2, data=data, evaluate=False
    )
    result = workload.run(gpubench)
    assert sum(result.epoch_images) == 2 * len(workload.train_set)
