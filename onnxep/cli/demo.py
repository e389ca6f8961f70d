"""``onnxep demo``: the main job on the model that ships with onnxep.

Partition the demo classifier over each available provider, show where every node ran and
why, time it, and check the result against the reference path and, if installed,
onnxruntime.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
from typing import Any

import numpy as np

from onnxep.discovery import REFERENCE, entries, get_available_providers
from onnxep.session import InferenceSession

__all__ = ["add_parser", "demo_model_path"]


def demo_model_path() -> str:
    """Path of the shipped demo model."""
    return str(importlib.resources.files("onnxep") / "data" / "demo_cnn.onnx")


def add_parser(sub: Any) -> None:
    """Register ``demo``."""
    parser = sub.add_parser("demo", help="partition, run and check the shipped demo model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs after warm-up")
    parser.add_argument("--model", default=None, help="another model instead of the demo")
    parser.set_defaults(func=run)


def _time(session: InferenceSession, feeds: dict[str, np.ndarray], repeat: int) -> float:
    session.run(None, feeds)  # warm-up (JIT compilation happens here)
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 1 if any provider disagrees with the reference path."""
    path = args.model or demo_model_path()
    print(f"model: {path}")
    _print_providers()
    rng = np.random.default_rng(0)
    reference = InferenceSession(path, providers=["reference"])
    feeds = {
        arg.name: rng.standard_normal(
            [d if isinstance(d, int) else args.batch for d in arg.shape]
        ).astype(np.float32)
        for arg in reference.get_inputs()
    }
    expected = reference.run(None, feeds)
    chains = [[p] for p in get_available_providers() if p != REFERENCE] + [[REFERENCE]]
    rows = []
    ok = True
    for chain in chains:
        start = time.perf_counter()
        session = InferenceSession(path, providers=chain)
        created = time.perf_counter() - start
        print(f"\n=== providers {chain} ===")
        print(session.explain())
        outputs = session.run(None, feeds)
        err = max(float(np.max(np.abs(o - e))) for o, e in zip(outputs, expected, strict=True))
        good = all(
            np.allclose(o, e, rtol=1e-3, atol=1e-5) for o, e in zip(outputs, expected, strict=True)
        )
        ok &= good
        rows.append((",".join(chain), created, _time(session, feeds, args.repeat), err, good))
    ort_row = _onnxruntime_row(path, feeds, expected, args.repeat)
    print("\n| providers | session (ms) | run median (ms) | max abs err vs reference | ok |")
    print("|---|---:|---:|---:|---|")
    for name, created, median, err, good in [*rows, *ort_row]:
        verdict = "yes" if good else "NO"
        print(f"| {name} | {created * 1e3:.1f} | {median * 1e3:.3f} | {err:.2e} | {verdict} |")
    top = int(np.argmax(expected[0][0])) if expected and np.asarray(expected[0]).ndim == 2 else None
    if top is not None:
        print(f"\nfirst image: class {top} with probability {expected[0][0][top]:.3f}")
    print("\nall providers agree with the reference path" if ok else "\nMISMATCH: see table")
    return 0 if ok else 1


def _agreement(outputs: list[Any], expected: list[Any]) -> tuple[float, bool]:
    """Max abs error over all outputs, and whether all are close (rtol 1e-3, atol 1e-5)."""
    pairs = list(zip(outputs, expected, strict=True))
    err = max(float(np.max(np.abs(o - e))) for o, e in pairs)
    return err, all(np.allclose(o, e, rtol=1e-3, atol=1e-5) for o, e in pairs)


def _print_providers() -> None:
    print("providers:")
    for name, entry in sorted(entries().items()):
        status = entry.availability()
        print(f"  {name:<28} {'available' if status else 'unavailable: ' + status.reason}")


def _onnxruntime_row(
    path: str, feeds: dict[str, np.ndarray], expected: list[Any], repeat: int
) -> list[tuple[str, float, float, float, bool]]:
    try:
        import onnxruntime
    except ImportError:
        print("\nonnxruntime is not installed: no comparison with it")
        return []
    start = time.perf_counter()
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - start
    outputs = session.run(None, feeds)
    err = max(float(np.max(np.abs(o - e))) for o, e in zip(outputs, expected, strict=True))
    good = all(
        np.allclose(o, e, rtol=1e-3, atol=1e-5) for o, e in zip(outputs, expected, strict=True)
    )
    session.run(None, feeds)
    times = []
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    return [("onnxruntime (CPU)", created, float(np.median(times)), err, good)]
