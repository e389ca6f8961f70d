"""Benchmark scripts of the onnxep repository (run them from the repository root).

The measuring code lives in :mod:`onnxep.bench` so that ``onnxep bench`` works from any
install; the scripts here are thin entry points over it.
"""

from __future__ import annotations
