"""``onnxep bench``: models (or per-op sweeps) on onnxep, onnxruntime and ReferenceEvaluator.

The measuring code lives in :mod:`onnxep.bench`, so the command works from any install;
``benchmarks/*.py`` in the repository are thin scripts over this module.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Any

__all__ = ["add_arguments", "add_parser", "main", "run"]

DESCRIPTION = """\
Measure models on every available onnxep provider chain, onnxruntime (CPU, same thread
count) and onnx's ReferenceEvaluator, side by side in one process: session creation, first
run, steady-state p50/p90/p99, ratios and max abs error vs onnxruntime. With no MODEL, the
built-in set (onnx's light_* models, a BERT-like encoder, a 500-Add chain). MODEL is a
built-in name (resnet50, bert_encoder, encoder:layers=1,hidden=64, add_chain:length=100) or
an .onnx path. --ops runs per-op sweeps instead (plus any MODEL given)."""


def _default_threads() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _sizes(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sizes expects integers, got {text!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``onnxep bench`` (shared with ``benchmarks/bench_models.py``)."""
    parser.add_argument("models", nargs="*", metavar="MODEL", help="models (default: built-in set)")
    parser.add_argument(
        "--providers",
        help="comma-separated chains, '+' joins a chain: "
        "'reference,numba+cpp' (default: each available provider, and all)",
    )
    parser.add_argument("--list", action="store_true", help="list the built-in models and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    timing.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    timing.add_argument(
        "--ref-repeat",
        type=int,
        default=3,
        help="timed runs of the slow ReferenceEvaluator (default 3)",
    )
    timing.add_argument(
        "--budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="stop repeating after this long per measurement, keeping at least 3 runs (default 20)",
    )
    timing.add_argument(
        "--settle",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="pause before each runner's timed runs, so threads an earlier runner left "
        "spinning (OpenBLAS's, up to ~0.2 s) do not slow it (default 0.3)",
    )
    timing.add_argument(
        "--threads",
        type=int,
        default=_default_threads(),
        help="intra-op threads for onnxep and onnxruntime (default: usable cores)",
    )
    timing.add_argument(
        "--no-reference-evaluator", action="store_true", help="skip onnx's ReferenceEvaluator"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", help="write the results as JSON")
    output.add_argument("--markdown", metavar="PATH", help="also write the report to a file")
    output.add_argument("--plot", metavar="PATH", help="plot speed-ups (needs matplotlib)")
    ops = parser.add_argument_group("per-op sweeps")
    ops.add_argument("--ops", action="store_true", help="sweep ops across sizes and dtypes")
    ops.add_argument(
        "--op",
        action="append",
        dest="op_names",
        metavar="OP",
        help="only this op (repeatable; default: all)",
    )
    ops.add_argument("--sizes", type=_sizes, help="sizes n for every op, e.g. '8,64'")
    ops.add_argument(
        "--dtypes",
        type=_csv,
        default=["float32", "float64"],
        help="dtypes (default float32,float64)",
    )


def add_parser(subparsers: Any) -> None:
    """Register ``bench`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark models and ops against onnxruntime",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"onnxep bench: error: {message}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace, chains: list[tuple[str, ...]]) -> dict[str, Any]:
    return {
        "repeat": args.repeat,
        "warmup": args.warmup,
        "ref_repeat": args.ref_repeat,
        "ref_warmup": 0,
        "budget_s": args.budget,
        "settle_s": args.settle,
        "threads": args.threads,
        "reference_evaluator": not args.no_reference_evaluator,
        "chains": [list(c) for c in chains],
        "statistic": "percentiles of steady-state runs",
    }


def _settings_markdown(s: dict[str, Any]) -> str:
    ref = f" (ReferenceEvaluator {s['ref_repeat']}, no warm-up)" if s["reference_evaluator"] else ""
    return (
        f"Each time is a percentile over up to {s['repeat']} timed runs{ref} after "
        f"{s['warmup']} warm-up run(s) (fewer runs, never below 3, past {s['budget_s']:g} s per "
        f"measurement, each after a {s['settle_s']:g} s pause); {s['threads']} intra-op "
        "threads for onnxep and onnxruntime. "
        "'time vs ORT' > 1 is slower than onnxruntime; 'speed-up vs RefEval' > 1 is faster "
        "than onnx's ReferenceEvaluator."
    )


def _check(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments, before anything is measured."""
    import numpy as np

    from onnxep.bench import report
    from onnxep.bench.ops import OP_CASES

    if args.repeat < 1 or args.warmup < 0 or args.ref_repeat < 1 or args.threads < 1:
        return "--repeat, --ref-repeat and --threads must be >= 1, --warmup >= 0"
    unknown = [o for o in args.op_names or () if o not in OP_CASES]
    if unknown:
        return f"unknown op(s) {unknown}; sweeps exist for {', '.join(OP_CASES)}"
    for dtype in args.dtypes:
        try:
            np.dtype(dtype)
        except TypeError:
            return f"--dtypes: {dtype!r} is not a numpy dtype"
    if args.plot:
        try:
            report.require_matplotlib()
        except ImportError as exc:
            return str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the arguments describe; print the Markdown report."""
    from onnxep.bench import models as bench_models
    from onnxep.bench.suite import parse_chains
    from onnxep.errors import OnnxepError

    if args.list:
        print("\n".join(bench_models.builtin_names()))
        return 0
    problem = _check(args)
    if problem:
        return _error(problem)
    try:
        chains, skipped = parse_chains(args.providers)
        models = bench_models.resolve_models(args.models) if args.models or not args.ops else []
    except OnnxepError as exc:  # an unknown provider name
        return _error(exc.detail)
    except ValueError as exc:
        return _error(str(exc))
    if not chains:
        return _error(f"none of the requested providers is available: {skipped}")
    document, text = _measure(args, chains, skipped, models)
    print(text)
    _write_outputs(args, text, document)
    return 0


def _config(args: argparse.Namespace) -> Any:
    from onnxep.bench.runner import BenchConfig

    return BenchConfig(
        repeat=args.repeat,
        warmup=args.warmup,
        ref_repeat=args.ref_repeat,
        ref_warmup=0,
        budget_s=args.budget,
        settle_s=args.settle,
        threads=args.threads,
        reference_evaluator=not args.no_reference_evaluator,
    )


def _steps(args: argparse.Namespace, chains: list, models: list, providers: list) -> int:
    """How many measurements the progress output counts."""
    from onnxep.bench.ops import OP_CASES, op_runners
    from onnxep.bench.suite import runners_for

    config = _config(args)
    steps = sum(len(runners_for(m, chains, config)) for m in models)
    if args.ops:
        points = sum(len(args.sizes or OP_CASES[o].sizes) for o in args.op_names or OP_CASES)
        steps += points * len(args.dtypes) * len(op_runners(providers, config))
    return steps


def _measure(
    args: argparse.Namespace, chains: list, skipped: dict[str, str], models: list
) -> tuple[dict[str, Any], str]:
    """Run everything asked for; return the JSON document and the Markdown report."""
    from onnxep.bench import ops_report, report
    from onnxep.bench.ops import run_ops
    from onnxep.bench.progress import Progress
    from onnxep.bench.suite import run_models

    config, settings = _config(args), _settings(args, chains)
    providers = list(dict.fromkeys(p for chain in chains for p in chain))
    progress = Progress(_steps(args, chains, models, providers), quiet=args.quiet)
    machine = report.machine_info(args.threads)
    document: dict[str, Any] = {"machine": machine, "settings": settings, "skipped": skipped}
    sections = [
        "# onnxep benchmark",
        "",
        report.machine_markdown(machine),
        "",
        _settings_markdown(settings),
    ]
    if skipped:
        sections.append(
            "\nSkipped providers: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    if models:
        document["models"] = run_models(models, chains, config, progress)
        sections += ["", report.models_markdown(document["models"])]
    if args.ops:
        document["ops"] = run_ops(
            providers,
            config,
            ops=args.op_names,
            sizes=args.sizes,
            dtypes=args.dtypes,
            progress=progress,
        )
        unavailable = {**machine["providers_unavailable"], **skipped}
        sections += ["", ops_report.ops_markdown(document["ops"], unavailable)]
    return document, "\n".join(sections) + "\n"


def _write_outputs(args: argparse.Namespace, text: str, document: dict[str, Any]) -> None:
    from onnxep.bench import ops_report, report

    records = document.get("models", [])
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text)
    if args.json:
        report.write_json(args.json, document)
    if args.plot:
        path = pathlib.Path(args.plot)
        if records:
            report.plot_models(records, path)
        if "ops" in document:
            ops_path = path.with_name(f"{path.stem}_ops{path.suffix}") if records else path
            ops_report.plot_ops(document["ops"], ops_path)


def main(argv: list[str] | None = None) -> int:
    """Run ``onnxep bench`` on its own (used by ``benchmarks/*.py``)."""
    parser = argparse.ArgumentParser(
        prog="onnxep bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
