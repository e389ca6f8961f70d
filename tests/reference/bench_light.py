"""Timing script (not a test): the reference path on onnx's light models and a 500-Add chain.

    OPENBLAS_NUM_THREADS=1 python tests/reference/bench_light.py [--reps 7] [--cpu] [--ref]
        [--models resnet50,vgg19]

Each repetition runs onnxep (reference provider only) then onnxruntime (CPU, as many
intra-op threads as ``OPENBLAS_NUM_THREADS``) back to back, so both see the same machine
load; medians after one warm-up run. ``--cpu`` times the calling thread's CPU time instead of
wall time (steadier on a shared machine, exact for one thread). ``--ref`` adds onnx's
ReferenceEvaluator (a third of the repetitions: it is slow). Input: ``np.random.rand``.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxep


def _median_ms(fn: Callable[[], object], clock: Callable[[], float], reps: int) -> float:
    samples = []
    for _ in range(reps):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples) * 1e3


HEADER = (
    "| model | onnxep ms | ReferenceEvaluator ms | onnxruntime ms | RefEval/onnxep | onnxep/ORT |"
)


def light_models(names: list[str] | None, reps: int, clock: Callable[[], float], ref: bool) -> None:
    """Print the Markdown table: onnxep vs ReferenceEvaluator vs onnxruntime."""
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or os.cpu_count() or 1
    print(f"threads={threads} reps={reps} clock={clock.__name__}")
    print(HEADER)
    print("|---|---|---|---|---|---|")
    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    for path in sorted(glob.glob(os.path.join(folder, "light_*.onnx"))):
        name = os.path.basename(path)[len("light_") : -len(".onnx")]
        if not names or name in names:
            t_ep, t_ref, t_ort = _time_model(path, threads, reps, clock, ref)
            row = f"| {name} | {t_ep:.1f} | {t_ref:.0f} | {t_ort:.1f} | {t_ref / t_ep:.1f}x "
            print(row + f"| {t_ep / t_ort:.2f}x |", flush=True)


def _time_model(
    path: str, threads: int, reps: int, clock: Callable[[], float], ref: bool
) -> tuple[float, float, float]:
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    session = onnxep.InferenceSession(path, providers=["reference"])
    arg = session.get_inputs()[0]
    feeds = {arg.name: np.random.default_rng(0).random(arg.shape, dtype=np.float32)}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    ort = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    ort.run(None, feeds)
    ours, theirs = [], []
    for _ in range(reps):
        ours.append(_median_ms(lambda: session.run(None, feeds), clock, 1))
        theirs.append(_median_ms(lambda: ort.run(None, feeds), clock, 1))
    t_ref = float("nan")
    if ref:
        evaluator = ReferenceEvaluator(path)
        t_ref = _median_ms(lambda: evaluator.run(None, feeds), clock, max(1, reps // 3))
    return statistics.median(ours), t_ref, statistics.median(theirs)


def add_chain(n: int = 500, reps: int = 200) -> None:
    """Per-node overhead: n chained Adds on float32[4] vs the bare numpy loop."""
    c = np.full(4, 0.5, np.float32)
    nodes = [
        helper.make_node("Add", ["x" if i == 0 else f"y{i - 1}", "c"], [f"y{i}"]) for i in range(n)
    ]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(f"y{n - 1}", TensorProto.FLOAT, [4])],
        [numpy_helper.from_array(c, "c")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    x = np.random.default_rng(0).random(4, dtype=np.float32)

    def bare() -> np.ndarray:
        y = x
        for _ in range(n):
            y = np.add(y, c)
        return y

    np.testing.assert_allclose(session.run(None, {"x": x})[0], bare(), rtol=1e-6)
    for fn in (lambda: session.run(None, {"x": x}), bare):
        _median_ms(fn, time.perf_counter, 20)
    ours = _median_ms(lambda: session.run(None, {"x": x}), time.perf_counter, reps)
    loop = _median_ms(bare, time.perf_counter, reps)
    print(f"{n} Adds: onnxep {ours * 1e3:.1f} us, bare loop {loop * 1e3:.1f} us", end="")
    print(f", ratio {ours / loop:.2f}")


def main() -> None:
    """Parse the options and print both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated light model names")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--cpu", action="store_true", help="thread CPU time instead of wall")
    parser.add_argument("--ref", action="store_true", help="also time ReferenceEvaluator")
    args = parser.parse_args()
    clock = time.thread_time if args.cpu else time.perf_counter
    light_models([m for m in args.models.split(",") if m] or None, args.reps, clock, args.ref)
    add_chain()


if __name__ == "__main__":
    main()
