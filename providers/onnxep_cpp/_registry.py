"""The C++ provider's kernel registry, and the compiled module when it imports.

``native`` is ``onnxep_cpp._kernels``, or None when the extension is missing or broken;
``load_error`` then says why. Kernel modules register either way, so the placement report
can list what the provider would run.
"""

from __future__ import annotations

from typing import Any

from onnxep.graph import NodeInfo
from onnxep.registry import KernelRegistry

__all__ = ["FLOAT", "kernels", "load_error", "native", "rank_check"]

native: Any
load_error: str | None
try:
    from onnxep_cpp import _kernels as native

    load_error = None
except ImportError as exc:  # not built, or built for another Python / CPU
    native = None
    load_error = f"{type(exc).__name__}: {exc}"

kernels = KernelRegistry()
FLOAT = ("float32",)


def rank_check(*allowed: tuple[int, ...]) -> Any:
    """A check declining nodes whose i-th input rank is known and not in ``allowed[i]``."""

    def check(info: NodeInfo) -> str | None:
        for i, ranks in enumerate(allowed):
            shape = info.input_shape(i) if i < info.n_inputs else None
            if shape is not None and len(shape) not in ranks:
                names = " or ".join(str(r) for r in ranks)
                return f"input {i} has rank {len(shape)}; the C++ kernel takes rank {names}"
        return None

    return check
