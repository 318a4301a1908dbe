"""The ``pytest-gpubench`` console script.

Subcommands share the plugin's modules (profiles, fit, reports), so what the script prints
is what a pytest run would decide.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from pytest_gpubench.cli import advise as advise_cli
from pytest_gpubench.cli import fit as fit_cli
from pytest_gpubench.devices import describe, detect, load_profiles
from pytest_gpubench.devices.select import auto_profile
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report.table import format_table


def _devices(args: argparse.Namespace) -> int:
    profiles = load_profiles(args.profiles)
    rows = []
    records = []
    for name in profiles.names:
        p = profiles.profiles[name]
        memory = "host RAM" if name == "cpu" and not p.memory_gib else f"{p.memory_gib:.0f}"
        rows.append(
            (
                name,
                p.display_name,
                memory,
                f"{p.largest_gpu_gib:.0f}" if p.parts else "",
                "yes" if p.unified else "no",
                f"{p.bandwidth_gbs:.0f}" if p.bandwidth_gbs else "-",
                " ".join(f"{d}={v:g}" for d, v in sorted(p.tflops.items())) or "-",
                p.compute_capability or "-",
                f"@pytest.mark.{p.marker_name}",
            )
        )
        records.append(
            {
                "name": name,
                "display_name": p.display_name,
                "memory_gib": p.memory_gib,
                "largest_gpu_gib": p.largest_gpu_gib,
                "unified": p.unified,
                "bandwidth_gbs": p.bandwidth_gbs,
                "tflops": p.tflops,
                "compute_capability": p.compute_capability,
                "parts": [q.name for q in p.parts],
                "interconnect_gbs": p.interconnect_gbs,
                "source": p.source,
                "unconfirmed": list(p.unconfirmed),
                "origin": p.origin,
            }
        )
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    headers = (
        "name",
        "device",
        "memory GiB",
        "largest GPU GiB",
        "unified",
        "GB/s",
        "dense TFLOPS",
        "CC",
        "marker",
    )
    for line in format_table(headers, rows):
        print(line)
    detection = detect()
    here = auto_profile(detection, profiles)
    print(f"\nthis machine: {detection.summary}")
    print(f"--device=auto selects {here.name} ({describe(here)})")
    print("sources: pytest-gpubench devices --json")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_gpubench.report import compare
    from pytest_gpubench.results.atomic import write_or_explain

    frame = compare.compare_files(args.files, dict(args.matches or []), detail=True)
    if len(args.files) > 1 and not args.all:
        frame = compare.shared_rows(frame)
        if frame.empty and not (args.metric or args.key):
            raise GpubenchError(
                "nothing to compare: no benchmark and metric is in two of the files; --all "
                "shows each file's rows, --as PEER_KEY NODEID lines a peer's entry up with ours"
            )
    if args.metric:
        frame = frame[frame["metric"].isin(args.metric)]
    if args.key:
        frame = frame[frame["key"].str.contains(args.key, regex=False)]
    if frame.empty:
        raise GpubenchError("nothing to compare: no benchmark matches the filters")
    for line in compare.to_text(frame):
        print(line)
    if args.markdown:
        write_or_explain(Path(args.markdown), compare.to_markdown(frame))
        print(f"wrote {args.markdown}")
    if args.csv:
        write_or_explain(Path(args.csv), frame[compare.LONG_COLUMNS].to_csv(index=False))
        print(f"wrote {args.csv}")
    if args.html:
        from pytest_gpubench.report import pareto

        try:  # files with sweep points: their frontiers too
            curves = pareto.load_curves(args.files)
        except GpubenchError:
            curves = None
        page = compare.to_html(frame, base=Path(args.html).parent, pareto=curves)
        write_or_explain(Path(args.html), page)
        print(f"wrote {args.html}")
    if args.png:
        for path in compare.to_png(frame, Path(args.png)):
            print(f"wrote {path}")
    if args.svg:
        for path in compare.to_svg(frame, Path(args.svg)):
            print(f"wrote {path}")
    return 0


def _pareto(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_gpubench.report import pareto
    from pytest_gpubench.results.atomic import write_or_explain
    from pytest_gpubench.serving.sweep import check_percentile

    try:  # checked with or without --slo: a percentile 42 was accepted silently
        pct = check_percentile(args.percentile)
    except GpubenchError as exc:
        raise GpubenchError(f"--percentile: {exc}") from None
    curves = pareto.load_curves(args.files, args.key)
    if args.slo:
        pareto.apply_slo(curves, pareto.parse_slo(args.slo), pct)
    for line in pareto.text_rows(curves):
        print(line)
    if args.png:
        from pytest_gpubench.report.charts import write_pareto

        print(f"wrote {write_pareto(curves, Path(args.png), args.title)}")
    if args.html:
        from pytest_gpubench.report.page import render_pareto

        write_or_explain(Path(args.html), render_pareto(curves))
        print(f"wrote {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-gpubench", description="GPU and ML benchmarks as pytest tests."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    devices = sub.add_parser(
        "devices", help="list the device profiles and what --device=auto picks"
    )
    devices.add_argument("--profiles", help="extra/overriding profiles TOML file")
    devices.add_argument("--json", action="store_true", help="print JSON with sources")
    devices.set_defaults(func=_devices)
    cmp = sub.add_parser(
        "compare",
        help="compare baselines, published references or pytest-benchmark JSON files",
        description="Per benchmark and metric: each file's value and its ratio to the first "
        "file's ('4.2x faster'), with 'did not fit' / 'not run' cells. Peers' files are "
        "recognised by their shape; their keys are listed with --all.",
    )
    cmp.add_argument(
        "files",
        nargs="+",
        help="our baselines, published references, pytest-benchmark JSON, or peers' results: "
        "vllm bench serve --save-result JSON, llama-bench -o json/jsonl, a GuideLLM JSON "
        "report; the first is the reference column",
    )
    cmp.add_argument(
        "--as",
        dest="matches",
        nargs=2,
        action="append",
        metavar=("PEER_KEY", "NODEID"),
        help="show the entries whose key is PEER_KEY (exact or a glob, e.g. 'vllm:*') as our "
        "benchmark NODEID, so they line up with it (repeatable)",
    )
    cmp.add_argument("--metric", action="append", help="only this metric (repeatable)")
    cmp.add_argument("--key", help="only benchmarks whose key contains this text")
    cmp.add_argument(
        "--all", action="store_true", help="also rows only one file has (default: shared rows)"
    )
    cmp.add_argument("--markdown", metavar="FILE", help="also write a Markdown table")
    cmp.add_argument("--csv", metavar="FILE", help="also write the long-form CSV")
    cmp.add_argument(
        "--html",
        metavar="FILE",
        help="also write one self-contained HTML page (sortable, filterable table, charts)",
    )
    cmp.add_argument("--png", metavar="DIR", help="also write one bar chart per metric (PNG)")
    cmp.add_argument("--svg", metavar="DIR", help="also write the charts as SVG")
    cmp.set_defaults(func=_compare)
    par = sub.add_parser(
        "pareto",
        help="draw each device's Pareto frontier (tok/s per user vs tok/s per GPU)",
        description="The frontier of every file's sweep points (serve_bench.sweep / capacity "
        "in our baselines; per-point metrics in references; a peer's runs at several "
        "concurrencies) on one chart, with the SLO line and each device's capacity marked.",
    )
    par.add_argument("files", nargs="+", help="baselines, references or peers' result files")
    par.add_argument("--key", help="only benchmarks whose key contains this text")
    par.add_argument("--png", metavar="FILE", help="write the chart (PNG; .svg for SVG)")
    par.add_argument("--html", metavar="FILE", help="write a page with the chart and table")
    par.add_argument("--title", default="", help="the chart's title")
    par.add_argument(
        "--slo",
        metavar="LIMITS",
        help="judge sweeps recorded without an SLO: e.g. tpot_ms=50,ttft_ms=2000 (ms; "
        "ttft_ms, tpot_ms, e2el_ms); draws the line and reads each such curve's capacity from "
        "its swept concurrencies (marked 'on the swept grid')",
    )
    par.add_argument(
        "--percentile",
        type=int,
        default=90,
        help="the percentile --slo limits (50, 90, 95 or 99; default 90)",
    )
    par.set_defaults(func=_pareto)
    fit_cli.add_parser(sub)
    advise_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GpubenchError as exc:
        print(f"pytest-gpubench: error: {exc}", file=sys.stderr)
        return 2
    except RecursionError:  # the readers name the file; this is the net under any other
        print(
            "pytest-gpubench: error: an input file is nested too deeply to read (hundreds of "
            "levels of lists or objects); check the files given",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:  # `pytest-gpubench pareto ... | head`: the reader left, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own recipe
        return 141
