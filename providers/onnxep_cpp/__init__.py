"""onnxep's C++ execution provider (``CppExecutionProvider``, alias ``cpp``).

float32 kernels written in C++17 (``csrc/``) and compiled into ``onnxep_cpp._kernels``:
a packed, cache-blocked GEMM with AVX-512 / AVX2 micro-kernels chosen at run time, Gemm,
MatMul, Conv, pools, elementwise ops with numpy broadcasting, Softmax, LayerNormalization
and BatchNormalization (inference). The GIL is released while a kernel runs and numpy
buffers are used in place. Threads follow the session's ``intra_op_num_threads`` (0: every
CPU this process may use). When the extension is not built, ``is_available()`` says so and
the other providers still work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from onnxep.graph import NodeInfo
from onnxep.provider import Provider, Segment, Support
from onnxep_cpp import _elementwise, _math, _nn, _normalization  # noqa: F401 (register kernels)
from onnxep_cpp._fusion import compile_segment
from onnxep_cpp._registry import kernels, load_error, native

__all__ = ["CppProvider", "isa"]


class CppProvider(Provider):
    """C++ kernels on the host CPU, sharing numpy's memory (no copies between providers)."""

    name = "CppExecutionProvider"
    device = "cpu"
    kernels = kernels
    version = "1"

    @classmethod
    def is_available(cls) -> Support:
        """Available when the compiled extension imports."""
        if load_error is not None:
            return Support.no(
                f"the C++ extension onnxep_cpp._kernels did not import ({load_error}); build it "
                "with `pip install -e . --no-build-isolation` (needs a C++17 compiler)"
            )
        return Support.yes()

    def bind(self, info: NodeInfo) -> Callable[..., Any]:
        """The node's kernel with its attributes and this session's thread count bound."""
        return functools.partial(super().bind(info), threads=self.threads or 0)

    def compile(self, segment: Segment) -> Callable[..., tuple[Any, ...]] | None:
        """Fuse Conv/Add/BatchNormalization + Relu pairs; None when nothing fuses."""
        return compile_segment(self, segment)


def isa() -> str:
    """The SIMD path the GEMM uses here: ``avx512``, ``avx2`` or ``scalar``."""
    return str(native.gemm_isa()) if native is not None else "unavailable"
