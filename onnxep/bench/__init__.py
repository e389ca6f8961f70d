"""Measuring onnxep against onnxruntime and onnx's ReferenceEvaluator (``onnxep bench``).

- :mod:`onnxep.bench.runner`: timing one model on one runtime;
- :mod:`onnxep.bench.models`: the built-in model set and model files;
- :mod:`onnxep.bench.suite`: every model on every runner, with ratios and errors;
- :mod:`onnxep.bench.ops`: per-op sweeps and crossover points;
- :mod:`onnxep.bench.report` / :mod:`onnxep.bench.ops_report`: machine, Markdown, JSON, plots.

Nothing here is imported by ``import onnxep``.
"""

from __future__ import annotations

from onnxep.bench.models import BenchModel, builtin_models, resolve_models
from onnxep.bench.ops import OP_CASES, run_ops
from onnxep.bench.runner import BenchConfig, Runner, measure
from onnxep.bench.suite import parse_chains, run_models

__all__ = [
    "OP_CASES",
    "BenchConfig",
    "BenchModel",
    "Runner",
    "builtin_models",
    "measure",
    "parse_chains",
    "resolve_models",
    "run_models",
    "run_ops",
]
