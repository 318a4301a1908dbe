"""vLLM across nodes on Ray: the command lines the launcher produces, checked against vLLM's
documented form (docs "Parallelism and Scaling", examples/online_serving/multi-node-serving.sh:
`ray start --head`, `ray start --address=HEAD:6379`, `vllm serve MODEL --tensor-parallel-size
<GPUs per node> --pipeline-parallel-size <nodes> --distributed-executor-backend ray`) and
parsed by the real `vllm serve` argument parser of the provisioned vLLM."""

from __future__ import annotations

import json
import subprocess

import pytest

from pytest_gpubench.engines.base import ModelRef
from pytest_gpubench.engines.vllm import ray_cluster
from pytest_gpubench.errors import GpubenchError

from plumbing.ci import unavailable

MODEL = ModelRef("meta-llama/Llama-3.1-405B-Instruct", "llama-405b")


def cluster():
    return ray_cluster(
        MODEL, head_address="10.0.0.1", nodes=2, gpus_per_node=8, options={"context": 8192}
    )


def test_head_worker_and_server_lines_are_the_documented_ones() -> None:
    c = cluster()
    assert c.head[0] == ["ray", "start", "--head", "--port=6379"]
    assert c.worker == ["ray", "start", "--address=10.0.0.1:6379"]
    serve = c.head[1]
    assert serve[:3] == ["vllm", "serve", MODEL.source]  # the model is positional
    flags = [a for a in serve[3:] if a != "--enable-prompt-tokens-details"]  # a switch
    assert len(flags) == len(serve) - 4  # ... there once: cached prompt tokens are reported
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    assert pairs["--tensor-parallel-size"] == "8"  # GPUs per node
    assert pairs["--pipeline-parallel-size"] == "2"  # nodes
    assert pairs["--distributed-executor-backend"] == "ray"
    assert pairs["--max-model-len"] == "8192"
    assert pairs["--host"] == "127.0.0.1"  # bound to loopback unless told otherwise
    script = c.script()
    assert script.index("ray start --head") < script.index("vllm serve")
    assert script.endswith("ray start --address=10.0.0.1:6379")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 1, "gpus_per_node": 8}, "nodes >= 2"),
        ({"nodes": 2, "gpus_per_node": 8, "options": {"tensor_parallel_size": 4}}, "leave it"),
    ],
)
def test_misuse_is_one_clear_error(kwargs, message) -> None:
    with pytest.raises(GpubenchError, match=message):
        ray_cluster(MODEL, head_address="10.0.0.1", **kwargs)


PARSE = """
import json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.entrypoints.cli.serve import ServeSubcommand
root = FlexibleArgumentParser()
ServeSubcommand().subparser_init(root.add_subparsers(dest="subparser"))
a = root.parse_args(json.loads(sys.argv[1]))
print(json.dumps([a.model_tag, a.tensor_parallel_size, a.pipeline_parallel_size,
                  a.distributed_executor_backend, a.max_model_len]))
"""


def test_the_real_vllm_serve_parser_accepts_the_server_line() -> None:
    from pytest_gpubench.launch import provision

    python = provision.find_vllm()
    if python is None:
        unavailable("vLLM is not provisioned: python -m pytest_gpubench.launch.provision vllm")
    argv = cluster().head[1][1:]  # after the `vllm` executable: `serve MODEL ...`
    done = subprocess.run(
        [str(python), "-c", PARSE, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed == [MODEL.source, 8, 2, "ray", 8192]
