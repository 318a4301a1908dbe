"""FLOP counts of small models against hand-derived formulas, and the energy counter.

Every expected value is worked out by hand in the test: a matmul of (M x K) by (K x N) is
2*M*N*K FLOPs; its backward computes the input's gradient (another 2*M*N*K) only where the
input needs one, and the weight's gradient (2*M*N*K) always; a convolution is 2 FLOPs per
multiply-add, Cin*kh*kw of them per output element; attention is two matmuls, QK^T and AV.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from plumbing.ci import require_module

require_module("torch", "FLOP counting needs torch (the test extra installs it)")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pytest_gpubench.bench.energy import EnergyCounter  # noqa: E402
from pytest_gpubench.workloads import flops  # noqa: E402


class ConvNet(torch.nn.Module):
    """conv 3->4 (3x3, same padding) on 2 x 3 x 8 x 8, flatten, linear 256 -> 5, MSE loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.norm = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> SimpleNamespace:
        x = self.norm(self.conv(pixel_values)).relu().flatten(1)
        return SimpleNamespace(loss=F.mse_loss(self.head(x), labels))


CONV_FWD = 2 * (2 * 8 * 8 * 4) * (3 * 3 * 3)  # 2 FLOPs x outputs (B*H*W*Cout) x Cin*kh*kw
HEAD_FWD = 2 * 2 * 256 * 5  # 2*M*N*K with M=batch 2, K=256, N=5


def test_forward_of_a_linear_stack_is_2mnk_per_matmul() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.randn(4, 8)
    out, counted = flops.count_call(model, x)
    assert out.shape == (4, 3)
    assert counted.total == 2 * 4 * 8 * 16 + 2 * 4 * 16 * 3  # 1024 + 384


def test_training_step_counts_forward_and_backward() -> None:
    """Backward: the head computes both gradients (2x its forward), the first conv only its
    weight's (1x: the pixels need no gradient). So backward = CONV_FWD + 2 * HEAD_FWD."""
    torch.manual_seed(0)
    model = ConvNet()
    batch = {"pixel_values": torch.randn(2, 3, 8, 8), "labels": torch.randn(2, 5)}
    step = flops.training_step_flops(model, batch, samples=2)
    assert step.forward == CONV_FWD + HEAD_FWD == 27648 + 5120
    assert step.backward == CONV_FWD + 2 * HEAD_FWD
    assert step.total == 2 * CONV_FWD + 3 * HEAD_FWD
    assert step.per_sample == step.total / 2
    facts = step.as_dict("image")
    assert facts["per_image"] == step.per_sample and facts["batch"] == 2


def test_counting_a_step_leaves_the_model_as_it_was() -> None:
    """No gradients left behind, batch-norm statistics restored, RNG not advanced: the timed
    training after the count is the training without it."""
    model = ConvNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = {"pixel_values": torch.randn(2, 3, 8, 8), "labels": torch.randn(2, 5)}
    rng = torch.get_rng_state()
    flops.training_step_flops(model, batch, samples=2)
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.get_rng_state(), rng)


def test_cpu_attention_is_counted_like_cuda_attention() -> None:
    """QK^T and AV: 2 x (2*B*H*S*S*D). PyTorch's registry has no formula for the CPU flash
    kernel, so without ``CPU_ATTENTION`` this would count 0 on CPU."""
    b, h, s, d = 1, 2, 5, 4
    q = torch.randn(b, h, s, d)
    _, counted = flops.count_call(F.scaled_dot_product_attention, q, q, q)
    assert counted.total == 2 * (2 * b * h * s * s * d) == 800


class _Pipe:
    """A stand-in diffusers pipeline: encode the prompt once, run the transformer once per
    step (twice with guidance), decode once."""

    def __init__(self, guidance: bool = False) -> None:
        self.text_encoder = torch.nn.Linear(6, 8, bias=False)
        self.transformer = torch.nn.Linear(8, 8, bias=False)
        self.vae = SimpleNamespace(decode=lambda z: z @ torch.ones(8, 12))
        self.guidance = guidance

    def __call__(self, steps: int) -> torch.Tensor:
        cond = self.text_encoder(torch.ones(3, 6))  # 3 text tokens
        z = torch.zeros(10, 8)  # 10 latent tokens
        for _ in range(steps):
            z = z + self.transformer(z) + cond.mean()
            if self.guidance:
                z = z + self.transformer(z)
        return self.vae.decode(z)


TEXT = 2 * 3 * 6 * 8  # 288
STEP = 2 * 10 * 8 * 8  # 1280 per transformer pass
DECODE = 2 * 10 * 8 * 12  # 1920


@pytest.mark.parametrize("guidance", [False, True])
def test_diffusion_flops_per_step_and_per_image(guidance: bool) -> None:
    pipe = _Pipe(guidance)
    steps = 4
    _, counted = flops.count_call(pipe, steps, parts=flops.pipeline_parts(pipe))
    per = flops.diffusion_flops(counted, steps)
    passes = 2 if guidance else 1
    assert per.transformer_calls == steps * passes
    assert per.per_step == STEP * passes
    assert (per.text_encoder, per.vae_decode, per.other) == (TEXT, DECODE, 0)
    assert per.per_image == steps * passes * STEP + TEXT + DECODE
    facts = per.as_dict()
    assert facts["transformer_per_image"] == steps * passes * STEP
    assert facts["per_image"] == per.per_image
    # the wrappers are gone: the pipeline's parts are its own again
    assert "forward" not in vars(pipe.transformer)
    assert not hasattr(pipe.vae.decode, "__wrapped__")
    assert pipe.vae.decode(torch.ones(1, 8)).shape == (1, 12)


def test_profile_dtype_names() -> None:
    assert flops.mfu_dtype(torch.bfloat16) == "bf16"
    assert flops.mfu_dtype(torch.float16) == "fp16"
    assert flops.mfu_dtype(torch.float32) == "fp32"


class _FakeNvml:
    """Counts 250 J per read, in mJ, as NVML's total-energy counter reports."""

    def __init__(self, energy: bool = True) -> None:
        self.mj = 1_000_000
        self.energy = energy
        self.shutdown = 0

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdown += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if not self.energy:
            raise RuntimeError("Not Supported")
        self.mj += 250_000
        return self.mj


def test_energy_counter_reads_joules() -> None:
    nvml = _FakeNvml()
    with EnergyCounter(nvml=nvml) as counter:
        assert counter.available
        first, second = counter.read(), counter.read()
    assert first is not None and second is not None
    assert second - first == pytest.approx(250.0)
    assert nvml.shutdown == 1


def test_energy_counter_without_a_counter_reads_none() -> None:
    nvml = _FakeNvml(energy=False)
    with EnergyCounter(nvml=nvml) as counter:
        assert not counter.available
        assert counter.read() is None
        assert counter.reason.startswith("no energy counter")
    assert nvml.shutdown == 1
