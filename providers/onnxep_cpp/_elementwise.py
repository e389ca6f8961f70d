"""Elementwise ops: unary maps and binary ops with numpy broadcasting (``csrc/elementwise.cpp``).

Versions start where today's semantics start: binary ops at their multidirectional
broadcasting versions (Add-7, Max-8), unary ops after the legacy ``consumed_inputs`` era.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep_cpp._registry import FLOAT, kernels, native

__all__ = ["BINARY", "UNARY"]

Kernel = Callable[..., np.ndarray]


def _function(name: str) -> Any:
    return getattr(native, name) if native is not None else None


def _unary(name: str) -> Kernel:
    fn = _function(name)

    def kernel(X: np.ndarray, *, threads: int = 0) -> np.ndarray:
        return fn(X, threads=threads)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"Elementwise {name} (C++)."
    return kernel


def _binary(name: str) -> Kernel:
    fn = _function(name)

    def kernel(A: np.ndarray, B: np.ndarray, *, threads: int = 0) -> np.ndarray:
        return fn(A, B, threads=threads)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"Elementwise {name} with numpy broadcasting (C++)."
    return kernel


def _variadic(name: str) -> Kernel:
    fn = _function(name)

    def kernel(*data: np.ndarray, threads: int = 0) -> np.ndarray:
        result = data[0]
        for other in data[1:]:
            result = fn(result, other, threads=threads)
        return np.array(result, copy=True) if len(data) == 1 else result

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"Elementwise {name} over any number of broadcast inputs (C++)."
    return kernel


UNARY = {
    name: _unary(name)
    for name in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "abs", "neg", "erf")
}
BINARY = {name: _binary(name) for name in ("add", "sub", "mul", "div", "pow")}

Table = tuple[tuple[str, str, tuple[int, ...]], ...]
_UNARY_OPS: Table = (
    ("Relu", "relu", (6, 13, 14)),
    ("Sigmoid", "sigmoid", (6, 13)),
    ("Tanh", "tanh", (6, 13)),
    ("Exp", "exp", (6, 13)),
    ("Log", "log", (6, 13)),
    ("Sqrt", "sqrt", (6, 13)),
    ("Abs", "abs", (6, 13)),
    ("Neg", "neg", (6, 13)),
    ("Erf", "erf", (9, 13)),
)
_BINARY_OPS: Table = (
    ("Add", "add", (7, 13, 14)),
    ("Sub", "sub", (7, 13, 14)),
    ("Mul", "mul", (7, 13, 14)),
    ("Div", "div", (7, 13, 14)),
    ("Pow", "pow", (7, 12, 13, 15)),
)
for _op, _name, _versions in _UNARY_OPS:
    kernels.register(_op, versions=_versions, dtypes=FLOAT)(UNARY[_name])
for _op, _name, _versions in _BINARY_OPS:
    kernels.register(_op, versions=_versions, dtypes=FLOAT)(BINARY[_name])


for _op, _name in (("Max", "max"), ("Min", "min")):
    kernels.register(_op, versions=(8, 12, 13), dtypes=FLOAT)(_variadic(_name))

_leaky_relu = _function("leaky_relu")
_clip = _function("clip")
_FLOAT32_MAX = 3.4028234663852886e38


@kernels.register("LeakyRelu", versions=(6, 16), dtypes=FLOAT)
def leaky_relu(
    X: np.ndarray, *, alpha: float = 0.009999999776482582, threads: int = 0
) -> np.ndarray:
    """x if x >= 0 else alpha * x."""
    return _leaky_relu(X, alpha=alpha, threads=threads)


@kernels.register("Clip", versions=(6,), dtypes=FLOAT)
def clip_6(
    input: np.ndarray,
    *,
    min: float = -_FLOAT32_MAX,
    max: float = _FLOAT32_MAX,
    threads: int = 0,
) -> np.ndarray:
    """Clip-6: bounds as attributes."""
    return _clip(input, lo=min, hi=max, threads=threads)


@kernels.register("Clip", versions=(11, 12, 13), dtypes=FLOAT)
def clip(
    input: np.ndarray,
    min: np.ndarray | None = None,
    max: np.ndarray | None = None,
    *,
    threads: int = 0,
) -> np.ndarray:
    """Clip-11+: optional scalar bounds as inputs (missing means unbounded)."""
    lo = -np.inf if min is None else float(np.asarray(min).reshape(()))
    hi = np.inf if max is None else float(np.asarray(max).reshape(()))
    return _clip(input, lo=lo, hi=hi, threads=threads)
