"""Helpers for provider authors' tests."""

from __future__ import annotations

from onnxep.options import GraphOptimizationLevel, SessionOptions

__all__ = ["kernel_test_options"]


def kernel_test_options() -> SessionOptions:
    """Session options that keep every node of the model, constant ones included.

    By default a session folds nodes whose inputs are all constants; a test that checks a
    provider really ran each node (``session.assignment``) should build its session with
    these options so no node disappears into a constant.
    """
    options = SessionOptions()
    options.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    return options
