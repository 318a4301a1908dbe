"""The foundation as a user meets it: markers, --device, fit skips, the plan, usage errors."""

from __future__ import annotations

import json

import pytest

BIG_TEST = """
import pytest

@pytest.mark.needs_vram(64)
def test_big():
    pass

def test_small():
    pass
"""


def test_markers_are_listed_with_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.device(*names): run this test only on the named device profile*",
            "@pytest.mark.needs_vram(gib, per_gpu=False): the test needs this much device memory*",
            "@pytest.mark.llm_inference: *",
            "@pytest.mark.vlm_inference: *",
            "@pytest.mark.llm_training: *",
            "@pytest.mark.image_generation: *",
            "@pytest.mark.object_detection: *",
            "@pytest.mark.h200_x2: *same as device('2xh200')*",
            "@pytest.mark.a100_80gb: *same as device('a100-80gb')*",
            "@pytest.mark.rtx4090: *",
            "@pytest.mark.spark: run only on NVIDIA DGX Spark (GB10)*",
        ]
    )


def test_needs_vram_skips_on_small_device_and_runs_on_large(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BIG_TEST)
    small = pytester.runpytest("--device=rtx4090", "-rs")
    small.assert_outcomes(passed=1, skipped=1)
    small.stdout.fnmatch_lines(["SKIPPED * needs 64.0 GiB, rtx4090 has 24.0 GiB"])
    large = pytester.runpytest("--device=spark", "-rs")
    large.assert_outcomes(passed=2)


def test_did_not_fit_section_lists_test_need_available_device(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BIG_TEST)
    result = pytester.runpytest("--device=rtx4090")
    result.stdout.fnmatch_lines(
        [
            "*= gpubench: did not fit on rtx4090 =*",
            "test * needs * available * device",
            "test_did_not_fit_section_lists_test_need_available_device.py::test_big"
            " * 64.0 GiB * 24.0 GiB * rtx4090",
        ]
    )
    assert "did not fit" not in pytester.runpytest("--device=h200").stdout.str()


def test_per_gpu_need_is_checked_against_the_largest_gpu(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs_vram(30)
        def test_split_over_gpus():
            pass

        @pytest.mark.needs_vram(30, per_gpu=True)
        def test_one_gpu():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090+rtx5070ti", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * needs 30.0 GiB, rtx4090+rtx5070ti's largest GPU has 24.0 GiB"]
    )


def test_device_markers_restrict_where_a_test_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.spark
        def test_spark_only():
            pass

        @pytest.mark.device("h100", "h200")
        def test_hopper():
            pass

        @pytest.mark.h200
        def test_h200_on_a_pair():
            pass
        """
    )
    on_spark = pytester.runpytest("--device=spark", "-rs")
    on_spark.assert_outcomes(passed=1, skipped=2)
    on_spark.stdout.fnmatch_lines(
        ["SKIPPED * runs only on h100, h200; the selected device is spark"]
    )
    pytester.runpytest("--device=h100").assert_outcomes(passed=1, skipped=2)
    # A marker naming one GPU also runs on a host made of that GPU.
    pytester.runpytest("--device=2xh200").assert_outcomes(passed=2, skipped=1)


def test_category_markers_select_with_m(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_inference
        def test_serve():
            pass

        @pytest.mark.llm_training
        def test_train():
            pass
        """
    )
    result = pytester.runpytest("-m", "llm_inference", "--strict-markers", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::test_serve PASSED*"])


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ('needs_vram("lots")', "the memory need must be a positive number of GiB, got 'lots'"),
        ("needs_vram(-3)", "the memory need must be a positive number of GiB, got -3"),
        ('needs_vram(float("nan"))', "the memory need must be a positive number of GiB, got nan"),
        ('needs_vram(float("inf"))', "the memory need must be a positive number of GiB, got inf"),
        ("needs_vram()", "expected needs_vram(gib)*"),
        ('device("rtx9999")', "unknown device 'rtx9999'*Known devices: *spark*"),
        ("device()", "expected device('name', ...)*"),
    ],
)
def test_malformed_marker_fails_collection_naming_test(
    pytester: pytest.Pytester, marker: str, problem: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_it():
            pass
        """
    )
    result = pytester.runpytest("--device=spark")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *::test_it: marker @pytest.mark.*: {problem}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_plan_prints_the_fit_table_and_runs_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs_vram(64)
        def test_big():
            raise AssertionError("the plan must not run tests")

        @pytest.mark.needs_vram(8)
        def test_fits():
            raise AssertionError("the plan must not run tests")

        @pytest.mark.spark
        def test_spark_only():
            raise AssertionError("the plan must not run tests")
        """
    )
    result = pytester.runpytest("--device=rtx4090", "--gpubench-plan")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*= gpubench plan =*",
            "plan for rtx4090 (24.0 GiB, 1008 GB/s): 1 of 3 benchmarks would run",
            "test * needs * verdict",
            "*::test_big * 64.0 GiB * skip: needs 64.0 GiB, rtx4090 has 24.0 GiB",
            "*::test_fits * 8.0 GiB * run",
            "*::test_spark_only * - * skip: runs only on spark; the selected device is rtx4090",
        ]
    )
    assert "AssertionError" not in result.stdout.str()


class TestDeviceOptionPrecedence:
    """--device beats GPUBENCH_DEVICE beats ini gpubench_device beats auto."""

    def header(self, pytester: pytest.Pytester, *args: str) -> str:
        result = pytester.runpytest(*args)
        lines = [line for line in result.stdout.lines if line.startswith("gpubench: device")]
        assert len(lines) == 1, result.stdout.str()
        return lines[0]

    def test_default_is_auto(self, pytester: pytest.Pytester, monkeypatch) -> None:
        monkeypatch.delenv("GPUBENCH_DEVICE", raising=False)
        assert "from default (auto-detected)" in self.header(pytester)

    def test_ini_then_env_then_cli(self, pytester: pytest.Pytester, monkeypatch) -> None:
        monkeypatch.delenv("GPUBENCH_DEVICE", raising=False)
        pytester.makeini("[pytest]\ngpubench_device = h100\n")
        assert self.header(pytester).startswith("gpubench: device h100 (80.0 GiB")
        assert "from ini gpubench_device" in self.header(pytester)
        monkeypatch.setenv("GPUBENCH_DEVICE", "spark")
        assert self.header(pytester).startswith("gpubench: device spark (128.0 GiB, unified")
        assert "from GPUBENCH_DEVICE" in self.header(pytester)
        line = self.header(pytester, "--device=rtx5090")
        assert line.startswith("gpubench: device rtx5090 (32.0 GiB") and "from --device" in line

    @pytest.mark.parametrize("where", ["cli", "env", "ini"])
    def test_unknown_name_is_a_usage_error_listing_known(
        self, pytester: pytest.Pytester, monkeypatch, where: str
    ) -> None:
        monkeypatch.delenv("GPUBENCH_DEVICE", raising=False)
        args = []
        if where == "cli":
            args = ["--device=rtx4909"]
        elif where == "env":
            monkeypatch.setenv("GPUBENCH_DEVICE", "rtx4909")
        else:
            pytester.makeini("[pytest]\ngpubench_device = rtx4909\n")
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["ERROR: unknown device 'rtx4909'. Did you mean rtx4090*Known devices: *h100*spark*"]
        )


class TestDetection:
    """--device=auto. NVML is really absent on this machine; GPUs come from a stand-in."""

    def test_without_nvml_auto_is_cpu_with_host_memory(self, pytester: pytest.Pytester) -> None:
        result = pytester.runpytest_subprocess("--device=auto")
        result.stdout.fnmatch_lines(
            [
                "gpubench: device cpu (* GiB) from --device (auto-detected)",
                "gpubench: detected no GPU (NVML unavailable: *); host * GiB",
            ]
        )
        host_gib = float(result.stdout.str().split("gpubench: device cpu (")[1].split(" GiB")[0])
        assert host_gib > 1.0

    def test_h100_maps_to_profile_with_nvml_memory(self, pytester, fake_nvml) -> None:
        fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
        result = pytester.runpytest_subprocess()
        result.stdout.fnmatch_lines(
            [
                "gpubench: device h100 (79.6 GiB, 3350 GB/s) from default (auto-detected)",
                "gpubench: detected NVIDIA H100 80GB HBM3 (driver 580.95.05, CUDA 13.0)",
            ]
        )

    def test_unified_memory_gpu_takes_memory_from_profile_not_zero(
        self, pytester, fake_nvml
    ) -> None:
        fake_nvml("NVIDIA GB10|NA|12.1")
        pytester.makepyfile(BIG_TEST)
        result = pytester.runpytest_subprocess("-rs")
        result.stdout.fnmatch_lines(["gpubench: device spark (128.0 GiB, unified, 273 GB/s)*"])
        result.assert_outcomes(passed=2)

    def test_two_gpus_compose(self, pytester, fake_nvml) -> None:
        fake_nvml("NVIDIA H200|143771|9.0;NVIDIA H200|143771|9.0")
        pytester.runpytest_subprocess().stdout.fnmatch_lines(
            ["gpubench: device 2xh200 (280.8 GiB, largest GPU 140.4 GiB, 4800 GB/s)*"]
        )
        fake_nvml("NVIDIA GeForce RTX 4090|24564|8.9;NVIDIA GeForce RTX 5070 Ti|16303|12.0")
        pytester.runpytest_subprocess().stdout.fnmatch_lines(
            ["gpubench: device rtx4090+rtx5070ti (39.9 GiB, largest GPU 24.0 GiB, 896 GB/s)*"]
        )

    def test_unknown_gpu_gets_a_detected_profile(self, pytester, fake_nvml) -> None:
        fake_nvml("NVIDIA L40S|46068|8.9")
        pytester.runpytest_subprocess().stdout.fnmatch_lines(
            ["gpubench: device l40s (45.0 GiB) from default (auto-detected)"]
        )

    def test_named_profile_differing_from_hardware_is_reported_and_recorded(
        self, pytester, fake_nvml
    ) -> None:
        fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
        pytester.makepyfile(
            """
            def test_bench(benchmark):
                benchmark(sum, [1, 2, 3])
            """
        )
        result = pytester.runpytest_subprocess("--device=spark", "--benchmark-json=out.json")
        result.stdout.fnmatch_lines(
            [
                "gpubench: device spark * from --device",
                "gpubench: WARNING --device=spark was asked for but this machine has"
                " NVIDIA H100 80GB HBM3 * (profile h100)*",
            ]
        )
        info = json.loads((pytester.path / "out.json").read_text())["machine_info"]["gpubench"]
        assert info["device"] == "spark"
        assert info["detected"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
        assert info["detected"]["driver"] == "580.95.05"


class TestUserProfiles:
    def test_add_and_override_from_ini_file(self, pytester: pytest.Pytester) -> None:
        pytester.path.joinpath("gpus.toml").write_text(
            """
[profiles.rtx6000pro]
display_name = "RTX PRO 6000 Blackwell"
memory_gib = 96
bandwidth_gbs = 1792
source = "vendor datasheet"

[profiles.rtx4090]
memory_gib = 48          # a modded 48 GB card
source = "my card"
"""
        )
        pytester.makeini("[pytest]\ngpubench_profiles = gpus.toml\n")
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.rtx6000pro
            @pytest.mark.needs_vram(64)
            def test_new():
                pass

            @pytest.mark.needs_vram(40)
            def test_modded():
                pass
            """
        )
        pytester.runpytest("--device=rtx6000pro").assert_outcomes(passed=2)
        modded = pytester.runpytest("--device=rtx4090", "-rs")
        modded.assert_outcomes(passed=1, skipped=1)
        modded.stdout.fnmatch_lines(["SKIPPED * runs only on rtx6000pro*"])
        pytester.runpytest("--markers").stdout.fnmatch_lines(
            ["@pytest.mark.rtx6000pro: run only on RTX PRO 6000 Blackwell*"]
        )

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("[profiles.x\n", "*gpus.toml is not valid TOML*"),
            (
                '[profiles.x]\nsource = "s"\n',
                "*gpus.toml: new profile 'x' lacks required field(s) memory_gib",
            ),
            (
                "[profiles.rtx4090]\nvram = 48\n",
                "*gpus.toml: profile 'rtx4090' has unknown key(s) vram*",
            ),
            (
                '[profiles.rtx4090]\nmemory_gib = "big"\n',
                "*field 'memory_gib' must be a non-negative number*",
            ),
        ],
    )
    def test_bad_profile_file_is_one_clear_error(
        self, pytester: pytest.Pytester, content: str, message: str
    ) -> None:
        pytester.path.joinpath("gpus.toml").write_text(content)
        pytester.makeini("[pytest]\ngpubench_profiles = gpus.toml\n")
        result = pytester.runpytest()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: {message}"])
        assert "Traceback" not in result.stderr.str()

    def test_missing_profile_file_names_it(self, pytester: pytest.Pytester) -> None:
        result = pytester.runpytest("--gpubench-profiles=nowhere.toml")
        result.stderr.fnmatch_lines(["ERROR: device profile file *nowhere.toml does not exist*"])


class TestGpusMarker:
    TWO_GPU_TEST = """
    import pytest

    @pytest.mark.gpus(2)
    def test_two():
        pass

    def test_any():
        pass
    """

    def test_skips_when_fewer_gpus_are_present(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(self.TWO_GPU_TEST)
        result = pytester.runpytest("--device=2xh200", "-rs")  # named, but no GPU here
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * needs 2 GPUs, 0 present on 2xh200"])

    def test_runs_where_two_are_detected(self, pytester: pytest.Pytester, fake_nvml) -> None:
        fake_nvml("NVIDIA H200|143771|9.0;NVIDIA H200|143771|9.0")
        pytester.makepyfile(self.TWO_GPU_TEST)
        pytester.runpytest_subprocess().assert_outcomes(passed=2)
        fake_nvml("NVIDIA H200|143771|9.0")
        pytester.runpytest_subprocess().assert_outcomes(passed=1, skipped=1)

    def test_plan_judges_by_the_profile(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(self.TWO_GPU_TEST)
        result = pytester.runpytest("--device=2xh200", "--gpubench-plan")
        result.stdout.fnmatch_lines(["plan for 2xh200 *: 2 of 2 benchmarks would run"])
        single = pytester.runpytest("--device=h200", "--gpubench-plan")
        single.stdout.fnmatch_lines(["*::test_two * skip: needs 2 GPUs, 1 present on h200"])

    def test_malformed(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.gpus("two")
            def test_it():
                pass
            """
        )
        result = pytester.runpytest()
        result.stderr.fnmatch_lines(
            ["ERROR: *::test_it: marker @pytest.mark.gpus: expected gpus(n)*"]
        )
