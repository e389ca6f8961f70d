"""The reference CPU provider: runs every op of ai.onnx and ai.onnx.ml with numpy.

Hot ops are hand-written, vectorised numpy kernels (registered in the modules imported
below); every other op runs through onnx's own reference implementation
(:mod:`onnxep.reference.onnx_ops`). It is always the last provider of a session.
"""

from __future__ import annotations

from onnxep.graph import NodeInfo
from onnxep.provider import Provider
from onnxep.reference import _kernels  # noqa: F401  (registers the hand-written kernels)
from onnxep.reference._registry import kernels
from onnxep.reference.onnx_ops import onnx_kernel
from onnxep.registry import Kernel

__all__ = ["ReferenceProvider"]


class ReferenceProvider(Provider):
    """numpy on the host; the fallback that takes every node nobody else claims."""

    name = "ReferenceExecutionProvider"
    device = "cpu"
    kernels = kernels
    version = "1"

    def kernel_for(self, info: NodeInfo) -> Kernel | None:
        """A hand-written kernel when there is one, else onnx's reference op."""
        return self.kernels.lookup(info.node.key) or onnx_kernel(info)

    def _missing_kernel_reason(self, info: NodeInfo) -> str:
        key = info.node.key
        where = key.domain or "ai.onnx"
        return f"no implementation of {key.op_type} (domain {where}, opset {key.since_version})"
