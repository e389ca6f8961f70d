"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, every version.

The axes are an attribute up to opset 17 (ReduceSum: 12) and an optional input after; with
no axes every dim is reduced, unless ``noop_with_empty_axes`` (then the input is returned).
Empty reductions give each op's identity (0, 1, -inf/+inf or the dtype's extreme, log 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.reference._common import FLOATS, INTS
from onnxep.reference._registry import kernels

__all__: list[str] = []


def _acc(x: np.ndarray) -> np.dtype:
    """The accumulation dtype: the input's own (float16 sums in float32)."""
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def _sum(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    return np.sum(x, axis=axes, keepdims=keep, dtype=_acc(x)).astype(x.dtype, copy=False)


def _mean(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    with np.errstate(all="ignore"):  # the mean of nothing is NaN (undefined in the spec)
        return np.mean(x, axis=axes, keepdims=keep).astype(x.dtype, copy=False)


def _extreme(fn: Callable[..., Any], identity: Callable[[np.dtype], Any]) -> Callable[..., Any]:
    def run(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
        return fn(x, axis=axes, keepdims=keep, initial=identity(x.dtype))

    return run


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return True
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def _prod(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    return np.prod(x, axis=axes, keepdims=keep, dtype=_acc(x)).astype(x.dtype, copy=False)


def _l1(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    return _sum(np.abs(x), axes, keep)


def _l2(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    s = np.sum(np.square(x, dtype=_acc(x)), axis=axes, keepdims=keep)
    return np.sqrt(s).astype(x.dtype, copy=False)


def _sum_square(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    return _sum(np.square(x), axes, keep)


def _log_sum(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_sum(x, axes, keep))


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> Any:
    if x.size == 0:
        return _log_sum(x, axes, keep)
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    with np.errstate(divide="ignore", over="ignore"):
        s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True, dtype=x.dtype)) + m
    return s if keep else np.squeeze(s, axis=axes)


def _run(
    fn: Callable[..., Any], x: Any, axes: Any, keepdims: int, noop_with_empty_axes: int
) -> Any:
    x = np.asarray(x)
    if axes is not None:
        axes = tuple(int(a) for a in np.asarray(axes).reshape(-1))
    if not axes:  # no axes: all of them, or none at all (the non-reducing steps still run)
        axes = () if noop_with_empty_axes else None
    return np.asarray(fn(x, axes, bool(keepdims)))


def _attr_kernel(fn: Callable[..., Any], doc: str) -> Callable[..., Any]:
    def reduce(data: Any, *, axes: tuple[int, ...] | None = None, keepdims: int = 1) -> Any:
        return _run(fn, data, axes, keepdims, 0)

    reduce.__doc__ = f"{doc} over ``axes`` (an attribute; all dims when absent)."
    return reduce


def _input_kernel(fn: Callable[..., Any], doc: str) -> Callable[..., Any]:
    def reduce(
        data: Any, axes: Any = None, *, keepdims: int = 1, noop_with_empty_axes: int = 0
    ) -> Any:
        return _run(fn, data, axes, keepdims, noop_with_empty_axes)

    reduce.__doc__ = f"{doc} over ``axes`` (an input; all dims when absent, or none if noop)."
    return reduce


_NUM = (*FLOATS, *INTS)
_TABLE = [
    # op, function, versions with the axes attribute, versions with the axes input, dtypes
    ("ReduceSum", _sum, (1, 11), (13,), _NUM),
    ("ReduceMean", _mean, (1, 11, 13), (18,), _NUM),
    ("ReduceMax", _extreme(np.max, _lowest), (1, 11, 12, 13), (18, 20), (*_NUM, "bool")),
    ("ReduceMin", _extreme(np.min, _highest), (1, 11, 12, 13), (18, 20), (*_NUM, "bool")),
    ("ReduceProd", _prod, (1, 11, 13), (18,), _NUM),
    ("ReduceL1", _l1, (1, 11, 13), (18,), _NUM),
    ("ReduceL2", _l2, (1, 11, 13), (18,), FLOATS),
    ("ReduceSumSquare", _sum_square, (1, 11, 13), (18,), _NUM),
    ("ReduceLogSum", _log_sum, (1, 11, 13), (18, 28), FLOATS),
    ("ReduceLogSumExp", _log_sum_exp, (1, 11, 13), (18, 28), FLOATS),
]
for _op, _fn, _attr_versions, _input_versions, _dtypes in _TABLE:
    _doc = _op.removeprefix("Reduce")
    kernels.register(_op, versions=_attr_versions, dtypes=_dtypes)(_attr_kernel(_fn, _doc))
    kernels.register(_op, versions=_input_versions, dtypes=_dtypes, host_inputs=(1,))(
        _input_kernel(_fn, _doc)
    )
