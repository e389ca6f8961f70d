"""Per-op kernel sweeps: one-node models across sizes and dtypes on every available provider.

Each cell is one op at one size and dtype on one runner (an onnxep provider alone, placement
checked so a silent fallback is never timed as the provider, or onnxruntime for context).
For providers on a device other than the host, the upload of the inputs and the download
of the outputs are also timed on their own. The crossover of a provider is the smallest
size from which it beats the reference provider at every larger size tried.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxep.bench.progress import Progress
from onnxep.bench.runner import (
    BenchConfig,
    Runner,
    measure,
    one_line,
    onnxep_runner,
    ort_runner,
)

__all__ = ["OP_CASES", "OpCase", "crossovers", "run_ops"]

REFERENCE = "ReferenceExecutionProvider"
Built = tuple[onnx.ModelProto, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class OpCase:
    """One op to sweep: ``build(n, dtype, rng)`` makes the model and feeds of size ``n``."""

    op: str
    shape: Callable[[int], str]
    build: Callable[[int, np.dtype, np.random.Generator], Built]
    sizes: tuple[int, ...]


def _model(op: str, opset: int, feeds: dict, inits: dict, **attrs: Any) -> onnx.ModelProto:
    dtype = next(iter(feeds.values())).dtype
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    node = helper.make_node(op, [*feeds, *inits], ["Y"], **attrs)
    graph = helper.make_graph(
        [node],
        f"{op.lower()}_sweep",
        [helper.make_tensor_value_info(k, elem, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info("Y", elem, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _matmul(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"A": _rand(rng, (n, n), dtype), "B": _rand(rng, (n, n), dtype)}
    return _model("MatMul", 13, feeds, {}), feeds


def _conv(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"X": _rand(rng, (1, 16, n, n), dtype)}
    inits = {"W": _rand(rng, (16, 16, 3, 3), dtype), "B": _rand(rng, (16,), dtype)}
    return _model("Conv", 11, feeds, inits, pads=[1, 1, 1, 1]), feeds


def _add(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"A": _rand(rng, (n, n), dtype), "B": _rand(rng, (n,), dtype)}
    return _model("Add", 14, feeds, {}), feeds


def _softmax(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"X": _rand(rng, (n, n), dtype)}
    return _model("Softmax", 13, feeds, {}, axis=-1), feeds


def _layer_norm(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"X": _rand(rng, (n, n), dtype)}
    inits = {"scale": _rand(rng, (n,), dtype), "bias": _rand(rng, (n,), dtype)}
    return _model("LayerNormalization", 17, feeds, inits, axis=-1), feeds


def _relu(n: int, dtype: np.dtype, rng: np.random.Generator) -> Built:
    feeds = {"X": _rand(rng, (n, n), dtype)}
    return _model("Relu", 14, feeds, {}), feeds


ROWS = (16, 64, 256, 1024, 2048)
OP_CASES: dict[str, OpCase] = {
    "MatMul": OpCase(
        "MatMul", lambda n: f"[{n},{n}] @ [{n},{n}]", _matmul, (16, 64, 256, 512, 1024)
    ),
    "Conv": OpCase("Conv", lambda n: f"[1,16,{n},{n}] * [16,16,3,3]", _conv, (8, 16, 32, 64, 128)),
    "Add": OpCase("Add", lambda n: f"[{n},{n}] + [{n}]", _add, ROWS),
    "Softmax": OpCase("Softmax", lambda n: f"[{n},{n}] axis=-1", _softmax, ROWS),
    "LayerNormalization": OpCase(
        "LayerNormalization", lambda n: f"[{n},{n}] axis=-1", _layer_norm, ROWS
    ),
    "Relu": OpCase("Relu", lambda n: f"[{n},{n}]", _relu, ROWS),
}


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _transfers(provider: str, feeds: dict, outputs: list, repeat: int) -> dict[str, float]:
    """Median upload (inputs) and download (outputs) times of a device provider."""
    from onnxep.discovery import entries

    cls = entries()[provider].load()
    assert cls is not None
    instance = cls()
    on_device = [instance.to_device(np.asarray(o)) for o in outputs]
    up = _median_ms(lambda: [instance.to_device(x) for x in feeds.values()], repeat)
    down = _median_ms(lambda: [instance.to_host(d) for d in on_device], repeat)
    return {"upload_ms": up, "download_ms": down, "transfer_ms": up + down}


def _placed_on(model: onnx.ModelProto, provider: str) -> str | None:
    """None when the one node runs on ``provider``, else the provider's reason."""
    import onnxep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a refusal is reported below, not warned about
        session = onnxep.InferenceSession(model, providers=[provider])
    if session.assignment(0) == provider:
        return None
    for entry in session.explain().to_dict()["fallback"]:
        for declined in entry["declined_by"]:
            if declined["provider"] == provider:
                return str(declined["reason"])
    return "not placed on the provider"


def _cell(
    case: OpCase,
    n: int,
    dtype: np.dtype,
    runner: Runner,
    config: BenchConfig,
    device: dict[str, str],
) -> dict[str, Any]:
    model, feeds = case.build(n, dtype, np.random.default_rng(0))
    cell: dict[str, Any] = {
        "op": case.op,
        "dtype": dtype.name,
        "size": n,
        "shape": case.shape(n),
        "runner": runner.label,
        "providers": list(runner.providers),
    }
    provider = runner.providers[0] if runner.kind == "onnxep" else None
    try:
        if provider is not None and (reason := _placed_on(model, provider)) is not None:
            return {**cell, "placed": False, "error": f"declined: {reason}"}
        m = measure(runner, model.SerializeToString(), feeds, config)
        if provider is not None and runner.info.get("placement") != {provider: 1}:
            why = "; ".join(m.notes) or str(runner.info.get("placement"))
            return {**cell, "placed": False, "error": f"fell back at run time: {why}"}
        cell.update(
            placed=True,
            error=None,
            p50_ms=m.percentile(50),
            p90_ms=m.percentile(90),
            repeats=len(m.runs_ms),
            first_ms=m.first_ms,
        )
        if provider in device:
            cell.update(_transfers(provider, feeds, m.outputs, config.repeat))
    except Exception as exc:  # a kernel or runtime that cannot run this cell
        cell.update(placed=False, error=one_line(f"{type(exc).__name__}: {exc}"))
    return cell


def op_runners(providers: Sequence[str], config: BenchConfig) -> list[Runner]:
    """Each onnxep provider alone (the reference one always), then onnxruntime for context."""
    import importlib.util

    names = list(dict.fromkeys([*providers, REFERENCE]))
    runners = [onnxep_runner((p,), config.threads) for p in names]
    if importlib.util.find_spec("onnxruntime") is not None:
        runners.append(ort_runner(config.threads))
    return runners


def run_ops(
    providers: Sequence[str],
    config: BenchConfig,
    *,
    ops: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    dtypes: Sequence[str] = ("float32", "float64"),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Sweep the ops over sizes, dtypes and providers; returns cells and crossovers."""
    from onnxep.discovery import entries

    table = entries()
    device = {}
    for name in providers:
        cls = table[name].load()
        if cls is not None and cls.device != "cpu":
            device[name] = cls.device
    unknown = [o for o in ops or () if o not in OP_CASES]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown}; sweeps exist for {', '.join(OP_CASES)}")
    cases = [OP_CASES[o] for o in (ops or OP_CASES)]
    runners = op_runners(providers, config)
    plan = [(c, n, np.dtype(d)) for c in cases for d in dtypes for n in (sizes or c.sizes)]
    progress = progress or Progress(len(plan) * len(runners), quiet=True)
    cells = []
    for case, n, dtype in plan:
        for runner in runners:
            progress.start(f"{case.op} {dtype.name} n={n} / {runner.label}")
            cells.append(_cell(case, n, dtype, runner, config, device))
            progress.finish(_summary(cells[-1]))
    return {"cells": cells, "crossovers": crossovers(cells), "device_providers": device}


def _summary(cell: dict[str, Any]) -> str:
    if cell.get("error"):
        return f"{cell['runner']}: {cell['error']}"
    return f"{cell['runner']}: p50 {cell['p50_ms']:.4f} ms"


def crossovers(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per op, dtype and runner: the size from which it beats the reference provider."""
    ref = {
        (c["op"], c["dtype"], c["size"]): c["p50_ms"]
        for c in cells
        if c["providers"] == [REFERENCE] and not c.get("error")
    }
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in cells:
        if (
            c["providers"] != [REFERENCE]
            and not c.get("error")
            and (c["op"], c["dtype"], c["size"]) in ref
        ):
            groups.setdefault((c["op"], c["dtype"], c["runner"]), []).append(c)
    result = []
    for (op, dtype, runner), group in groups.items():
        group.sort(key=lambda c: c["size"])
        entry = {"op": op, "dtype": dtype, "runner": runner, "sizes": [c["size"] for c in group]}
        entry["from_size"] = _crossover(group, ref, lambda c: c["p50_ms"])
        if any("transfer_ms" in c for c in group):
            entry["from_size_without_transfers"] = _crossover(
                group, ref, lambda c: c["p50_ms"] - c.get("transfer_ms", 0.0)
            )
        result.append(entry)
    return result


def _crossover(group: list[dict], ref: dict, time_of: Callable[[dict], float]) -> int | None:
    """The smallest size from which every larger size is faster than the reference."""
    found = None
    for cell in reversed(group):
        if time_of(cell) < ref[(cell["op"], cell["dtype"], cell["size"])]:
            found = cell["size"]
        else:
            break
    return found
