"""The reference provider's registry of hand-written numpy kernels."""

from __future__ import annotations

from onnxep.registry import KernelRegistry

__all__ = ["kernels"]

kernels = KernelRegistry()
