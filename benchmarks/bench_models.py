"""Models on every onnxep provider chain vs onnxruntime vs onnx's ReferenceEvaluator.

The same code and options as ``onnxep bench`` (see ``--help``), e.g. from the repo root::

    python benchmarks/bench_models.py --json benchmarks/results/models.json \
        --markdown benchmarks/results/models.md --plot benchmarks/results/models.png

Importable: ``from benchmarks.bench_models import run_models, resolve_models``.
"""

from __future__ import annotations

import sys

from onnxep.bench import BenchConfig, builtin_models, resolve_models, run_models
from onnxep.bench.suite import parse_chains
from onnxep.cli.bench import main

__all__ = ["BenchConfig", "builtin_models", "main", "parse_chains", "resolve_models", "run_models"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
