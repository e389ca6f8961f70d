"""Helpers for provider authors' tests."""

from __future__ import annotations

from typing import Any

from onnxep.graph import Node, NodeInfo, graph_from_proto
from onnxep.load import load_model
from onnxep.options import GraphOptimizationLevel, SessionOptions
from onnxep.provider import Provider, Support

__all__ = ["claimed_labels", "kernel_test_options", "node_decisions"]


def kernel_test_options() -> SessionOptions:
    """Session options that keep every node of the model, constant ones included.

    By default a session folds nodes whose inputs are all constants; a test that checks a
    provider really ran each node (``session.assignment``) should build its session with
    these options so no node disappears into a constant.
    """
    options = SessionOptions()
    options.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def node_decisions(provider: Provider, model: Any) -> list[tuple[Node, Support]]:
    """Each node of the loaded model with the provider's answer; [] if the model won't load.

    The model is loaded as a session loads it (checked, shape-inferred), so dtypes and
    shapes are what ``supports`` would see in a real session.
    """
    try:
        loaded, _ = load_model(model)
        opsets = {
            ("" if o.domain == "ai.onnx" else o.domain): o.version for o in loaded.opset_import
        }
        graph = graph_from_proto(loaded.graph, opsets, overridable=loaded.ir_version >= 4)
    except Exception:  # a model that does not load is the session's error to report
        return []
    return [(node, provider.supports(NodeInfo(node, graph))) for node in graph.nodes]


def claimed_labels(provider: Provider, model: Any) -> list[str]:
    """Labels of the nodes of ``model`` that ``provider`` accepts."""
    return [node.label for node, support in node_decisions(provider, model) if support]
