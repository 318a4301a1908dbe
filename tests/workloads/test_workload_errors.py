"""What a user sees when a workload cannot run: out of memory, a missing extra, bad settings.

Runs that import torch/transformers go through ``runpytest_subprocess``: an in-process pytester
run removes the modules it imported when it ends, which leaves transformers' lazy imports half
torn down for the next test.
"""

from __future__ import annotations

import pytest

from plumbing.ci import require_module

require_module("torch", "the workloads need torch (the test extra installs it)")

PLANTED_OOM = """
import torch
from pytest_gpubench.workloads import resident

def test_a_too_big(gpubench, generate_workload):
    # Load a real (tiny) model into the resident slot, as a big benchmark would ...
    generate_workload(size="tiny")._model()
    assert resident._slot
    # ... then run out of memory inside the workload. PLANTED: this machine has no GPU, so the
    # error CUDA raises is raised here by hand, with the message CUDA's allocator writes.
    def step():
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
            "23.53 GiB of which 1.2 GiB is free."
        )
    gpubench(step, work=1, unit="images", rounds=1, warmup_rounds=0)

def test_b_next_benchmark_runs(gpubench, generate_workload):
    assert not resident._slot  # the OOM released the resident model
    generate_workload(size="tiny", input_len=8, output_len=4, rounds=1, warmup_rounds=0).run(
        gpubench
    )
"""


def test_out_of_memory_is_did_not_fit_and_the_next_benchmark_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(PLANTED_OOM)
    result = pytester.runpytest_subprocess("--device=cpu", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *did not fit: OOM at * GB (*): CUDA out of memory. Tried to "
            "allocate 20.00 GiB*",
            "*1 passed, 1 skipped*",
        ]
    )
    # The skipped benchmark records nothing; the next one is in the results table.
    result.stdout.fnmatch_lines(["*test_b_next_benchmark_runs*decode_tok_per_s*"])
    assert "test_a_too_big  " not in result.stdout.str().split("gpubench results")[-1]


def test_hand_built_oom_exceptions_are_recognised() -> None:
    """Exceptions built here by hand (no GPU on this machine) with the text CUDA's allocator
    writes: torch's OutOfMemoryError, and the plain RuntimeError spelling older torch raised."""
    import torch

    from pytest_gpubench.workloads.memory import did_not_fit_message, is_oom

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(RuntimeError("shape mismatch"))
    message = did_not_fit_message(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert message.startswith("did not fit: OOM at ") and " GB (" in message


def test_missing_extra_skips_with_the_pip_command(pytester: pytest.Pytester) -> None:
    # diffusers is installed here, so the run hides it: a None entry in sys.modules makes
    # ``import diffusers`` raise ImportError, exactly as on a machine without it.
    pytester.makeconftest("import sys\nsys.modules['diffusers'] = None\n")
    pytester.makepyfile(
        """
        def test_images(gpubench, diffusion_workload):
            raise AssertionError("must not run without diffusers")
        """
    )
    result = pytester.runpytest_subprocess("--device=cpu", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED *needs diffusers, which is not installed: "
            "pip install 'pytest-gpubench[[]diffusion[]]'*"
        ]
    )


def test_unknown_workload_setting_names_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_typo(gpubench, finetune_workload):
            finetune_workload(size="tiny", epoch=3)
        """
    )
    result = pytester.runpytest_subprocess("--device=cpu", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*GpubenchError: Finetune has no setting epoch; settings: *epochs*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpubench-weights=pretrained"], "*weights 'pretrained' must be auto, random or hub*"),
        (["--gpubench-images=0"], "*--gpubench-images: the image count must be a whole number*"),
    ],
)
def test_bad_workload_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_hub_weights_offline_and_not_cached_is_a_clear_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_gpubench.errors import GpubenchError
    from pytest_gpubench.workloads.finetune import Finetune, FinetuneSettings
    from pytest_gpubench.workloads.synthetic import choose_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    choice = choose_weights("google/gemma-3-270m-it", "auto", tiny=False)
    assert (choice.weights, choice.reason) == (
        "random",
        "auto: not in the local Hugging Face cache",
    )
    with pytest.raises(
        GpubenchError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"
    ):
        Finetune(FinetuneSettings(weights="hub", device="cpu"))
