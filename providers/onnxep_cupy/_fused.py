"""Running a :class:`~onnxep_cupy.codegen.FusedKernelSpec`: one ``cupy.ElementwiseKernel``
on device arrays, the same expressions through numpy on host arrays."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from onnxep_cupy._backend import cupy, is_host
from onnxep_cupy.codegen import PREAMBLE, FusedKernelSpec, evaluate_numpy

__all__ = ["elementwise_kernel", "run_spec"]

#: Kernels created so far (compiled lazily by CuPy on first call, cached on disk by source).
_created: list[str] = []


@functools.lru_cache(maxsize=2048)
def elementwise_kernel(spec: FusedKernelSpec) -> Any:
    """The ``cupy.ElementwiseKernel`` for a spec (created once per distinct spec)."""
    _created.append(spec.name)
    return cupy().ElementwiseKernel(
        spec.in_params, spec.out_params, spec.operation, spec.name, preamble=PREAMBLE
    )


def run_spec(spec: FusedKernelSpec, *arrays: Any) -> Any:
    """Compute the spec's output from its inputs (in ``spec.inputs`` order)."""
    if all(is_host(a) for a in arrays):
        return evaluate_numpy(spec, *arrays)
    cp = cupy()
    args = [cp.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a for a in arrays]
    return elementwise_kernel(spec)(*args)


def kernels_created() -> list[str]:
    """Names of the ElementwiseKernels created in this process (for tests and reports)."""
    return list(_created)
