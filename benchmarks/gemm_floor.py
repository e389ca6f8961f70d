"""How far numpy's BLAS alone lets the reference path go: each light model's matrix
products timed on their own, beside onnxruntime's whole run and the reference path's.

The reference provider lowers every Conv, Gemm and MatMul to ``np.matmul`` (im2col columns
for convolutions). This script takes those products' exact shapes from the model (shape
inference), times each one standalone with ``np.matmul`` on this machine's BLAS, and sums
them: the **matmul floor**, a lower bound for the reference path that no numpy-level work
can beat. onnxruntime and the reference path run in the same process, alternating, with
the same thread count. Run from the repository root::

    python benchmarks/gemm_floor.py              # writes benchmarks/results/gemm_floor.{json,md}

Results depend on the BLAS kernels: ``OPENBLAS_CORETYPE`` (see benchmarks/README.md) is
recorded with them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnx

import onnxep
from onnxep.bench.report import machine_info, machine_markdown
from onnxep.models import light_model_paths

RESULTS = pathlib.Path(__file__).parent / "results"
Product = tuple[int, int, int, int]  # batch, rows, inner, columns


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per model")
    parser.add_argument("--models", default="", help="comma-separated light model names")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "gemm_floor")
    return parser.parse_args(argv)


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def matrix_products(model: onnx.ModelProto) -> Iterator[Product]:
    """The (batch, rows, inner, columns) of each matrix product the reference path runs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [shapes.get(name) for name in node.input[:2]]
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and ins[1] and out:
            group = attrs.get("group", 1)
            weight = ins[1]
            inner = weight[1] * math.prod(weight[2:])
            yield out[0] * group, weight[0] // group, inner, math.prod(out[2:])
        elif node.op_type == "Gemm" and ins[0] and ins[1]:
            rows, inner = ins[0][::-1] if attrs.get("transA") else ins[0]
            columns = ins[1][0] if attrs.get("transB") else ins[1][1]
            yield 1, rows, inner, columns
        elif node.op_type == "MatMul" and ins[0] and ins[1] and out:
            yield math.prod(out[:-2]), ins[0][-2], ins[0][-1], ins[1][-1]


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` in ms after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def matmul_ms(product: Product, repeat: int) -> float:
    """``np.matmul`` of one float32 product of that shape, standalone (median ms)."""
    batch, rows, inner, columns = product
    rng = np.random.default_rng(0)
    a = rng.random((batch, rows, inner), dtype=np.float32)
    b = rng.random((batch, inner, columns), dtype=np.float32)
    out = np.empty((batch, rows, columns), np.float32)
    return median_ms(lambda: np.matmul(a, b, out=out), repeat)


def session_ms(path: pathlib.Path, runtime: Any, threads: int, repeat: int) -> float:
    """Median ms of one run of the model in an onnxruntime-API session."""
    options = runtime.SessionOptions()
    options.intra_op_num_threads = threads
    kwargs = {"providers": ["reference"] if runtime is onnxep else ["CPUExecutionProvider"]}
    session = runtime.InferenceSession(str(path), options, **kwargs)
    feeds = {
        i.name: np.random.default_rng(0).random(
            [d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32
        )
        for i in session.get_inputs()
    }
    time.sleep(0.3)  # numpy's OpenBLAS threads of the previous step go back to sleep
    return median_ms(lambda: session.run(None, feeds), repeat)


def measure(name: str, path: pathlib.Path, args: argparse.Namespace, ort: Any) -> dict:
    """One model's row."""
    products = list(matrix_products(onnx.load(str(path))))
    flops = sum(2 * b * m * k * n for b, m, k, n in products)
    unique = {p: matmul_ms(p, 5) for p in set(products)}
    floor = sum(unique[p] for p in products)
    ort_ms = session_ms(path, ort, args.threads, args.repeat)
    ref_ms = session_ms(path, onnxep, args.threads, args.repeat)
    return {
        "model": name,
        "gflop": flops / 1e9,
        "products": len(products),
        "onnxruntime_ms": ort_ms,
        "reference_ms": ref_ms,
        "matmul_floor_ms": floor,
        "matmul_floor_gflops": flops / floor / 1e6,
        "onnxruntime_gflops": flops / ort_ms / 1e6,
    }


def markdown(rows: list[dict], info: dict) -> str:
    """The results as a Markdown report."""
    lines = [
        "# Matmul floor of the reference path",
        "",
        machine_markdown(info),
        "",
        "| model | GFLOP | onnxruntime ms | reference ms | matmul floor ms "
        "| floor / onnxruntime | reference / onnxruntime | floor GFLOP/s | ORT GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ort = r["onnxruntime_ms"]
        lines.append(
            f"| {r['model']} | {r['gflop']:.2f} | {ort:.3g} | {r['reference_ms']:.3g} "
            f"| {r['matmul_floor_ms']:.3g} | {r['matmul_floor_ms'] / ort:.2f}x "
            f"| {r['reference_ms'] / ort:.2f}x | {r['matmul_floor_gflops']:.0f} "
            f"| {r['onnxruntime_gflops']:.0f} |"
        )
    lines += [
        "",
        "matmul floor: every Conv/Gemm/MatMul of the model as the reference path lowers it "
        "(im2col shapes), each timed standalone with np.matmul and summed; the reference "
        "path cannot run faster than that with this BLAS.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Measure, print the Markdown table, write JSON and Markdown."""
    args = parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: nothing to compare with", file=sys.stderr)
        return 1
    wanted = {m for m in args.models.split(",") if m}
    models = [m for m in light_model_paths() if not wanted or m.name in wanted]
    if not models:
        print("no light models found in the installed onnx package", file=sys.stderr)
        return 1
    rows = [measure(m.name, m.path, args, ort) for m in models]
    info = machine_info(args.threads)
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    report = markdown(rows, info)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": info, "models": rows}
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2))
    args.out.with_suffix(".md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
