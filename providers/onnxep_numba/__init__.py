"""The numba-JIT CPU provider: ``NumbaExecutionProvider`` (alias ``numba``).

Kernels are ``@numba.njit(parallel=True)`` loops compiled on first use and cached on disk
where a cache folder is writable; MatMul/Gemm and the convolutions' inner products go to
BLAS through numpy. ``compile(segment)`` folds constants, folds BatchNormalization (and
per-channel Mul/Add) into a preceding Conv, fuses activations into Conv, and fuses chains
and trees of elementwise ops into one generated loop (see :mod:`onnxep_numba.compiler`).

Arrays stay numpy arrays in host memory, shared with the reference and C++ providers.
Importing ``onnxep`` does not import this package; importing this package imports numba.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from onnxep.graph import NodeInfo
from onnxep.provider import Provider, Segment, Support
from onnxep.registry import KernelRegistry

__all__ = ["NumbaProvider"]

#: How long (in pause instructions, about 60 us here) numba's OpenMP workers spin for the next
#: parallel region before they sleep. libgomp's own default (300000, milliseconds) keeps them
#: spinning through whatever runs next on the CPU: another provider's thread pool then shares
#: its cores with them (ResNet-50 on ``["cpp", "numba"]``: 70 ms instead of 38, and 38 is
#: cpp alone). Consecutive numba kernels follow each other within microseconds, so they still
#: find the workers awake. A value in the environment is respected; it takes effect only when
#: libgomp is loaded after this import (numba loads it at the first parallel kernel).
GOMP_SPINCOUNT = "3000"
os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)

try:
    import numba
except ImportError as exc:  # the provider reports itself unavailable, with the reason
    numba = None
    _IMPORT_ERROR = f"numba is not importable: {exc}"
    kernels = KernelRegistry()
else:
    _IMPORT_ERROR = ""
    from onnxep_numba import (  # noqa: F401  (importing registers the kernels)
        conv,
        elementwise,
        matmul,
        norm,
        pool,
        reduce,
        resize,
        tensor,
    )
    from onnxep_numba._registry import kernels


class NumbaProvider(Provider):
    """numba-compiled CPU kernels with elementwise fusion and Conv+BatchNorm folding.

    Options (``providers=[("numba", {...})]``): ``fuse`` (default True) fuses elementwise
    ops and folds constants; ``False`` runs one kernel per node.
    """

    name = "NumbaExecutionProvider"
    device = "cpu"
    kernels: ClassVar[KernelRegistry] = kernels
    version = "1"

    @classmethod
    def is_available(cls) -> Support:
        """Available when numba imports."""
        if numba is None:
            return Support.no(_IMPORT_ERROR)
        return Support.yes()

    def configure(self, *, threads: int | None = None) -> None:
        """Set numba's thread count (clamped to ``numba.config.NUMBA_NUM_THREADS``)."""
        super().configure(threads=threads)
        if numba is not None and self.threads:
            self.threads = max(1, min(int(self.threads), numba.config.NUMBA_NUM_THREADS))
            numba.set_num_threads(self.threads)

    def supports(self, info: NodeInfo) -> Support:
        """Tensors only (no sequences, maps or optionals), then the registry's checks."""
        for i, name in enumerate(info.node.inputs):
            if name and info.input_type(i).kind != "tensor":
                return Support.no(f"input {i} is a {info.input_type(i).kind}, not a tensor")
        for i, name in enumerate(info.node.outputs):
            if name and info.output_type(i).kind not in ("tensor", "unknown"):
                return Support.no(f"output {i} is a {info.output_type(i).kind}, not a tensor")
        return super().supports(info)

    def compile(self, segment: Segment) -> Callable[..., tuple[Any, ...]] | None:
        """Fold, fuse and emit the segment as one Python function over numba kernels."""
        from onnxep_numba.compiler import compile_segment

        fuse = str(self.options.get("fuse", True)).lower() not in ("0", "false", "no")
        return compile_segment(segment, self, fuse=fuse, threads=self.threads)
