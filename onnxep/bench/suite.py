"""The model benchmark: every model on every runner, side by side, in one process.

Runners: each requested onnxep provider chain, onnxruntime's CPU provider (same thread
count as onnxep), onnx's ``ReferenceEvaluator`` (optional, fewer repeats) and, where a
model has one, a plain-numpy baseline. Each row holds creation, first-run and steady-state
times, ratios to onnxruntime and to the ReferenceEvaluator, and the error against
onnxruntime's outputs.
"""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Sequence
from typing import Any

import onnx

from onnxep.bench.models import BenchModel
from onnxep.bench.progress import Progress
from onnxep.bench.runner import (
    BenchConfig,
    Measurement,
    Runner,
    max_abs_error,
    measure,
    onnxep_runner,
    ort_runner,
    reference_evaluator_runner,
)

__all__ = ["default_chains", "parse_chains", "run_models", "runners_for"]

ORT_LABEL = "onnxruntime"
REFEVAL_LABEL = "ReferenceEvaluator"


def parse_chains(text: str | None) -> tuple[list[tuple[str, ...]], dict[str, str]]:
    """``"reference,numba+cpp"`` -> chains of full provider names, and skipped ones' reasons.

    None means the default: each available provider alone, plus all of them together when
    more than one is available (nothing is skipped then: the machine report lists the
    unavailable ones). Unknown names raise ``InvalidArgument``.
    """
    from onnxep.discovery import canonical_names, entries

    if not text:
        return default_chains(), {}
    table = entries()
    chains: list[tuple[str, ...]] = []
    skipped: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        chain: list[str] = []
        for name in item.split("+"):
            for full in canonical_names(name.strip()):
                status = table[full].availability() if full in table else None
                if status:
                    chain.append(full)
                else:
                    skipped[full] = status.reason if status is not None else "not installed"
        if chain:
            chains.append(tuple(dict.fromkeys(chain)))
    return chains, skipped


def default_chains() -> list[tuple[str, ...]]:
    """Each available provider alone, and the whole available chain when there are several."""
    from onnxep.discovery import get_available_providers

    available = get_available_providers()
    chains = [(name,) for name in available]
    if len(available) > 1:
        chains.append(tuple(available))
    return chains


def unavailable_providers() -> dict[str, str]:
    """Installed providers that cannot run here, with the reason."""
    from onnxep.discovery import entries

    return {
        name: status.reason
        for name, entry in sorted(entries().items())
        if not (status := entry.availability())
    }


def runners_for(
    model: BenchModel, chains: Sequence[tuple[str, ...]], config: BenchConfig
) -> list[Runner]:
    """The runners of one model, onnxruntime first (it is the reference for errors)."""
    runners: list[Runner] = []
    if importlib.util.find_spec("onnxruntime") is not None:
        runners.append(ort_runner(config.threads))
    for chain in chains:
        runners.append(onnxep_runner(chain, config.threads))
    if config.reference_evaluator:
        runners.append(reference_evaluator_runner())
    if model.baseline is not None:
        runners.append(model.baseline())
    return runners


def _row(model: BenchModel, runner: Runner, m: Measurement | None, error: str | None) -> dict:
    row: dict[str, Any] = {
        "model": model.name,
        "runner": runner.label,
        "kind": runner.kind,
        "providers": list(runner.providers),
        "error": error,
    }
    if m is not None:
        row.update(
            create_ms=m.create_ms,
            first_ms=m.first_ms,
            p50_ms=m.percentile(50),
            p90_ms=m.percentile(90),
            p99_ms=m.percentile(99),
            mean_ms=sum(m.runs_ms) / len(m.runs_ms),
            repeats=len(m.runs_ms),
            warmup=m.warmup,
            notes=m.notes,
        )
    row.update({k: v for k, v in runner.info.items()})
    return row


def _add_ratios(rows: list[dict], outputs: dict[str, list[Any]], nodes: int) -> None:
    by_label = {r["runner"]: r for r in rows if r.get("p50_ms") is not None}
    ort = by_label.get(ORT_LABEL)
    ref = by_label.get(REFEVAL_LABEL)
    baseline = next((r for r in by_label.values() if r["kind"] == "baseline"), None)
    for row in rows:
        p50 = row.get("p50_ms")
        row["time_vs_ort"] = p50 / ort["p50_ms"] if p50 and ort else None
        row["speedup_vs_refeval"] = ref["p50_ms"] / p50 if p50 and ref else None
        got, expected = outputs.get(row["runner"]), outputs.get(ORT_LABEL)
        err = None
        if got is not None and expected is not None:
            err = max_abs_error(got, expected)
        row["max_abs_err_vs_ort"] = err
        if baseline is not None and p50:
            row["time_vs_baseline"] = p50 / baseline["p50_ms"]
            row["overhead_us_per_node"] = (p50 - baseline["p50_ms"]) * 1e3 / nodes


def run_model(
    model: BenchModel,
    chains: Sequence[tuple[str, ...]],
    config: BenchConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Measure one model on every runner; a runner that fails gives a row with its error."""
    data = model.load()
    feeds = model.feeds(data)
    rows, outputs = [], {}
    for runner in runners_for(model, chains, config):
        progress.start(f"{model.name} / {runner.label}")
        try:
            m = measure(runner, data, feeds, config)
        except Exception as exc:  # one broken runtime must not stop the benchmark
            last = traceback.extract_tb(exc.__traceback__)[-1]
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            rows.append(_row(model, runner, None, f"{error} ({last.name}:{last.lineno})"))
            progress.finish(f"{runner.label}: failed: {error}")
            continue
        outputs[runner.label] = m.outputs
        rows.append(_row(model, runner, m, None))
        progress.finish(f"{runner.label}: p50 {m.percentile(50):.3f} ms ({len(m.runs_ms)} runs)")
    _add_ratios(rows, outputs, model.nodes_per_baseline)
    return {
        "name": model.name,
        "description": model.description,
        "nodes": len(onnx.load_from_string(data).graph.node),
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "results": rows,
    }


def run_models(
    models: Sequence[BenchModel],
    chains: Sequence[tuple[str, ...]],
    config: BenchConfig,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Measure every model; returns one JSON-ready record per model."""
    if progress is None:
        per_model = len(chains) + 1 + int(config.reference_evaluator)
        total = len(models) * per_model + sum(m.baseline is not None for m in models)
        progress = Progress(total, quiet=True)
    return [run_model(model, chains, config, progress) for model in models]
