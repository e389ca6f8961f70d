"""Per-op kernel sweeps (MatMul, Conv, Add, Softmax, LayerNormalization, Relu) on every provider.

``onnxep bench --ops`` with the same options, e.g. from the repo root::

    python benchmarks/bench_ops.py --json benchmarks/results/ops.json \
        --markdown benchmarks/results/ops.md --plot benchmarks/results/ops.png

Importable: ``from benchmarks.bench_ops import run_ops, crossovers``.
"""

from __future__ import annotations

import sys

from onnxep.bench.ops import OP_CASES, crossovers, run_ops
from onnxep.cli.bench import main as _bench_main

__all__ = ["OP_CASES", "crossovers", "main", "run_ops"]


def main(argv: list[str] | None = None) -> int:
    """``onnxep bench --ops`` with ``argv``."""
    return _bench_main(["--ops", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
