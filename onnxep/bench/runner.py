"""Timing one model on one runtime: session creation, first run, steady-state percentiles.

A *runner* is a way to execute a model: an onnxep provider chain, onnxruntime's CPU provider,
onnx's ``ReferenceEvaluator``, or a plain-numpy baseline. All of them are created from the
same serialized model bytes and fed the same arrays, in one process.
"""

from __future__ import annotations

import dataclasses
import gc
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BenchConfig",
    "Measurement",
    "RunFn",
    "Runner",
    "max_abs_error",
    "one_line",
    "measure",
    "onnxep_runner",
    "ort_runner",
    "reference_evaluator_runner",
]

Feeds = Mapping[str, np.ndarray]
RunFn = Callable[[Feeds], Sequence[Any]]
#: Steady-state repeats kept even when the time budget is spent.
MIN_REPEATS = 3


@dataclasses.dataclass
class BenchConfig:
    """How hard to measure: repeats, warm-up, time budget per measurement, threads."""

    repeat: int = 10
    warmup: int = 2
    ref_repeat: int = 3
    ref_warmup: int = 0
    budget_s: float = 20.0
    threads: int = 1
    reference_evaluator: bool = True
    #: Pause before the timed runs, so that worker threads an earlier runner left spinning
    #: have gone to sleep: OpenBLAS's spin up to ~0.2 s after a GEMM, and onnxruntime timed
    #: meanwhile ran up to 4x slower on this 2-core machine (SqueezeNet 6.9 ms, not 1.6).
    settle_s: float = 0.3


@dataclasses.dataclass
class Runner:
    """A named way to run a model; ``create(model_bytes)`` returns the run function.

    ``info`` is filled by ``create`` (e.g. an onnxep session's node placement).
    """

    label: str
    kind: str  # "onnxep", "onnxruntime", "reference_evaluator" or "baseline"
    create: Callable[[bytes], RunFn]
    providers: tuple[str, ...] = ()
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    slow: bool = False  # measured with the reference evaluator's (smaller) repeat counts
    #: Called after the timed runs to fill ``info`` (an onnxep session's final placement,
    #: which changes when a provider fails at run time and its nodes are rebuilt elsewhere).
    after: Callable[[], None] | None = None


@dataclasses.dataclass
class Measurement:
    """Times in milliseconds; ``outputs`` are the first run's results (for error checks)."""

    create_ms: float
    first_ms: float
    runs_ms: list[float]
    warmup: int
    outputs: list[Any]
    notes: list[str]

    def percentile(self, q: float) -> float:
        """The q-th percentile of the steady-state runs (linear interpolation)."""
        return float(np.percentile(self.runs_ms, q))


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


def measure(runner: Runner, model: bytes, feeds: Feeds, config: BenchConfig) -> Measurement:
    """Create the runner's session, run once, warm up, then time up to ``repeat`` runs.

    Repeats stop early when ``config.budget_s`` is spent, but never below ``MIN_REPEATS``.
    Warnings raised meanwhile are kept as notes instead of being printed.
    """
    repeat = config.ref_repeat if runner.slow else config.repeat
    warmup = config.ref_warmup if runner.slow else config.warmup
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        run = runner.create(model)
        create_ms = _ms(start)
        start = time.perf_counter()
        outputs = list(run(feeds))
        first_ms = _ms(start)
        for _ in range(warmup):
            run(feeds)
        time.sleep(config.settle_s)
        runs: list[float] = []
        deadline = time.perf_counter() + config.budget_s
        while len(runs) < repeat and (len(runs) < MIN_REPEATS or time.perf_counter() < deadline):
            start = time.perf_counter()
            run(feeds)
            runs.append(_ms(start))
        if runner.after is not None:
            runner.after()
    notes = sorted({one_line(f"{w.category.__name__}: {w.message}") for w in caught})
    return Measurement(create_ms, first_ms, runs, warmup, outputs, notes)


def one_line(text: str, limit: int = 300) -> str:
    """A warning as one Markdown-safe line: first line only, shortened, pipes escaped."""
    line = text.strip().splitlines()[0] if text.strip() else text
    line = line.replace("|", "\\|")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def max_abs_error(got: Sequence[Any], expected: Sequence[Any]) -> float:
    """The largest absolute difference over all outputs (inf when shapes differ)."""
    worst = 0.0
    for a, b in zip(got, expected, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        if a.size == 0:
            continue
        if a.dtype.kind in "fciub" and b.dtype.kind in "fciub":
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if not np.isnan(diff).all() else 0.0)
            if np.isnan(a).any() != np.isnan(b).any():
                return float("inf")
        elif not np.array_equal(a, b):
            return float("inf")
    return worst


def onnxep_runner(providers: Sequence[str], threads: int, label: str | None = None) -> Runner:
    """An onnxep session on ``providers`` (the reference provider is appended by onnxep)."""
    import onnxep
    from onnxep.provider import alias_of

    info: dict[str, Any] = {}
    sessions: list[Any] = []

    def create(model: bytes) -> RunFn:
        options = onnxep.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxep.InferenceSession(model, options, providers=list(providers))
        sessions[:] = [session]
        return lambda feeds: session.run(None, feeds)

    def after() -> None:
        placement = sessions[0].explain().to_dict()
        info["placement"] = placement["nodes_per_provider"]
        info["transfers_per_run"] = placement["transfers"]["per_run"]
        sessions.clear()  # the runner outlives the measurement; the session need not

    name = label or f"onnxep[{'+'.join(alias_of(p) for p in providers)}]"
    return Runner(name, "onnxep", create, tuple(providers), info, after=after)


def ort_runner(threads: int) -> Runner:
    """onnxruntime's CPU provider with ``intra_op_num_threads=threads``."""

    def create(model: bytes) -> RunFn:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, dict(feeds))

    return Runner("onnxruntime", "onnxruntime", create, ("CPUExecutionProvider",))


def reference_evaluator_runner() -> Runner:
    """onnx's pure-Python ``ReferenceEvaluator`` (slow: measured with fewer repeats)."""

    def create(model: bytes) -> RunFn:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        return lambda feeds: evaluator.run(None, dict(feeds))

    return Runner("ReferenceEvaluator", "reference_evaluator", create, slow=True)
