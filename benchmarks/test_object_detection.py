"""Object-detection training: RT-DETRv2 r50vd, 10 epochs, batch 8, 640 px, ~1.1k images."""

import pytest

# RT-DETRv2 r50vd training: 42.9 M params in fp32 with AdamW (weights + grads + 2 states:
# 0.7 GiB); activations of a batch of 8 at 640 x 640 through the ResNet-50 backbone and the
# hybrid encoder are the bulk (~5-7 GiB under bf16 autocast). Rounded up to 10 GiB.
RTDETR_V2_TRAIN_GIB = 10


@pytest.mark.object_detection
@pytest.mark.needs_vram(RTDETR_V2_TRAIN_GIB)
def test_rtdetr_v2_r50vd_train(gpubench, detection_workload):
    workload = detection_workload(model="PekingU/rtdetr_v2_r50vd")
    result = workload.run(gpubench)
    assert sum(result.epoch_images) == 10 * len(workload.train_set)


@pytest.mark.object_detection
@pytest.mark.needs_vram(RTDETR_V2_TRAIN_GIB * 3)
def test_rtdetr_v2_r50vd_train_device_data_b32(gpubench, detection_workload):
    """Not the seed's settings: synthetic tensors made on the GPU (no images, no processor)
    and batch 32, so the host does less per image: the GPU's own training speed (3 epochs:
    images/s is the figure to compare, not the time)."""
    workload = detection_workload(
        model="PekingU/rtdetr_v2_r50vd", data="device", batch_size=32, epochs=3
    )
    result = workload.run(gpubench)
    assert sum(result.epoch_images) == 3 * len(workload.train_set)


@pytest.mark.object_detection
def test_rtdetr_v2_tiny_train_cpu(gpubench, detection_workload):
    """The same architecture, CPU-sized: 1 block per stage, 64 px, 40 images, 3 epochs."""
    workload = detection_workload(
        model="PekingU/rtdetr_v2_r50vd",
        size="tiny",
        images=40,
        epochs=3,
        batch_size=4,
        image_size=64,
        source_size=(64, 48),
        max_boxes=3,
    )
    result = workload.run(gpubench)
    assert sum(result.epoch_images) == 3 * len(workload.train_set)
