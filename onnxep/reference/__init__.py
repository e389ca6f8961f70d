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
        """A hand-written kernel that accepts the node, else onnx's reference op.

        A hand-written kernel declines (by ``dtypes`` or ``check``) what it does not implement
        exactly; such a node runs on onnx's op instead of running wrongly.
        """
        kernel = self.kernels.lookup(info.node.key)
        if kernel is not None and Provider.supports(_Only(kernel), info):
            return kernel
        return onnx_kernel(info)

    def _missing_kernel_reason(self, info: NodeInfo) -> str:
        key = info.node.key
        where = key.domain or "ai.onnx"
        reason = f"no implementation of {key.op_type} (domain {where}, opset {key.since_version})"
        declined = self._declined(info)
        if declined:
            reason = f"{key} is implemented, but not for this node: {declined}"
        if key.domain.startswith("com.microsoft"):
            reason += (
                "; it is an onnxruntime contrib op, written by onnxruntime's extended graph "
                "optimisations or its quantization tools: save the optimised model at "
                "ORT_ENABLE_BASIC (ai.onnx ops only), re-export without those optimisations, "
                "or quantize in QDQ format"
            )
        return reason

    def _declined(self, info: NodeInfo) -> str:
        """Why the hand-written kernel for the node's op declines it ("" if there is none)."""
        kernel = self.kernels.lookup(info.node.key)
        if kernel is None:
            return ""
        return Provider.supports(_Only(kernel), info).reason


class _Only(Provider):
    """A provider holding one kernel: reuses the base dtype/check logic of ``supports``."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self._kernel = kernel

    def kernel_for(self, info: NodeInfo) -> Kernel | None:
        return self._kernel
