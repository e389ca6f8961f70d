"""``onnxep run``, ``onnxep partition`` and ``onnxep providers``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import onnx

from onnxep.discovery import entries
from onnxep.errors import NotImplemented
from onnxep.explain import annotate_model
from onnxep.feeds_random import parse_dims, random_feeds
from onnxep.load import load_model
from onnxep.session import InferenceSession, placement

__all__ = ["add_parsers", "compare", "split_providers"]


def split_providers(text: str | None) -> list[str] | None:
    """``"numba,reference"`` -> ``["numba", "reference"]``; None keeps the default."""
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def add_parsers(sub: Any) -> None:
    """Register run, partition and providers."""
    run = sub.add_parser("run", help="run a model on seeded random inputs")
    run.add_argument("model")
    run.add_argument("--providers", help="priority list, e.g. numba,reference")
    run.add_argument("--dim", action="append", metavar="NAME=VALUE", help="symbolic dim value")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--repeat", type=int, default=1, help="runs to time (median reported)")
    run.add_argument("--compare", choices=["onnxruntime", "reference"], help="check outputs")
    run.set_defaults(func=cmd_run)

    part = sub.add_parser("partition", help="show where each node would run, and why")
    part.add_argument("model")
    part.add_argument("--providers", help="priority list, e.g. numba,reference")
    part.add_argument("--json", action="store_true", help="print the report as JSON")
    part.add_argument("--save-annotated", metavar="OUT.onnx", help="write a Netron-ready copy")
    part.set_defaults(func=cmd_partition)

    prov = sub.add_parser("providers", help="installed providers, availability, op coverage")
    prov.add_argument("--ops", action="store_true", help="list each provider's ops")
    prov.set_defaults(func=cmd_providers)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a model and print output summaries, timing and optional comparison."""
    session = InferenceSession(args.model, providers=split_providers(args.providers))
    feeds = random_feeds(session, parse_dims(args.dim), seed=args.seed)
    times = []
    for _ in range(max(args.repeat, 1)):
        start = time.perf_counter()
        outputs = session.run(None, feeds)
        times.append(time.perf_counter() - start)
    print(f"providers: {', '.join(session.get_providers())}")
    for arg, value in zip(session.get_outputs(), outputs, strict=True):
        print(f"output {arg.name}: {_describe(value)}")
    print(f"run time (median of {len(times)}): {np.median(times) * 1e3:.3f} ms")
    if args.compare:
        ok = compare(args.model, feeds, outputs, args.compare)
        return 0 if ok else 1
    return 0


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size and value.dtype.kind in "fiub":
            return (
                f"{value.dtype}{list(value.shape)} min {value.min():.4g} "
                f"max {value.max():.4g} mean {value.mean():.4g}"
            )
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


def compare(model: Any, feeds: dict[str, Any], outputs: list[Any], against: str) -> bool:
    """Print max abs/rel error of ``outputs`` against onnxruntime or the reference path."""
    if against == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            print("compare: onnxruntime is not installed")
            return True
        source = model if isinstance(model, str) else model.SerializeToString()
        ref = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
        expected = ref.run(None, feeds)
    else:
        expected = InferenceSession(model, providers=["reference"]).run(None, feeds)
    ok = True
    for i, (got, want) in enumerate(zip(outputs, expected, strict=True)):
        got, want = np.asarray(got), np.asarray(want)
        if got.dtype.kind not in "fc":
            same = np.array_equal(got, want)
            print(f"output {i}: {'identical' if same else 'DIFFERENT'} vs {against}")
            ok &= same
            continue
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        rel = err / max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-12)
        good = bool(np.allclose(got, want, rtol=1e-3, atol=1e-4))
        print(
            f"output {i}: max abs err {err:.3g}, max rel err {rel:.3g} vs {against}"
            f"{'' if good else '  <-- MISMATCH'}"
        )
        ok &= good
    return ok


def cmd_partition(args: argparse.Namespace) -> int:
    """Print the placement report (text or JSON), optionally save an annotated model.

    A model with a node no provider runs still gets its report (placement only, exit 1).
    """
    providers = split_providers(args.providers)
    try:
        session = InferenceSession(args.model, providers=providers)
        report, model, status = session.explain(), session._model, 0
    except NotImplemented as error:
        report, model, status = placement(args.model, providers=providers), None, 1
        print(f"onnxep: {error}", file=sys.stderr)
    print(report.to_json() if args.json else report)
    if args.save_annotated:
        model = model if model is not None else load_model(args.model)[0]
        onnx.save(annotate_model(model, report), args.save_annotated)
        if not args.json:
            print(f"\nannotated model written to {args.save_annotated}")
    return status


def cmd_providers(args: argparse.Namespace) -> int:
    """List installed providers with availability, device, version and op coverage."""
    rows = []
    for name, entry in sorted(entries().items()):
        status = entry.availability()
        cls = entry.load()
        ops = sorted({f"{k.key.op_type}" for k in cls.kernels}) if cls is not None else []
        rows.append((name, entry.alias, status, cls, ops, entry.distribution))
    for name, alias, status, cls, ops, dist in rows:
        state = "available" if status else f"unavailable: {status.reason}"
        device = cls.device if cls is not None else "?"
        version = cls.version if cls is not None else "?"
        kernels = len(cls.kernels) if cls is not None else 0
        print(f"{name} (alias {alias}, package {dist}, version {version}, device {device})")
        print(f"    {state}")
        extra = (
            " (plus every other ONNX op through onnx's reference ops)"
            if alias == "reference"
            else ""
        )
        print(f"    {len(ops)} ops, {kernels} kernel versions{extra}")
        if args.ops and ops:
            print("    " + ", ".join(ops))
    return 0
