"""Indexing kernels: Slice, Gather, GatherElements, GatherND, TopK, ArgMax/ArgMin, CumSum,
NonZero, OneHot, Trilu, Einsum.

Negative indices count from the end where the spec allows it; Slice clamps its bounds
exactly as the opset-13 spec describes (which differs from Python's slicing when a negative
step starts before the beginning).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxep.reference._common import NUMERIC, checked_indices, input_dtypes
from onnxep.reference._registry import kernels

__all__: list[str] = []


def _bounds(start: int, end: int, step: int, dim: int) -> slice:
    """One axis of an ONNX Slice as a Python slice (starts/ends clamped per the spec)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, end if end >= 0 else None, step)


def _slice(data: Any, starts: Any, ends: Any, axes: Any, steps: Any) -> Any:
    data = np.asarray(data)
    starts = [int(s) for s in np.reshape(starts, -1)]
    ends = [int(e) for e in np.reshape(ends, -1)]
    axes = range(len(starts)) if axes is None else [int(a) for a in np.reshape(axes, -1)]
    steps = [1] * len(starts) if steps is None else [int(s) for s in np.reshape(steps, -1)]
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + data.ndim if axis < 0 else axis
        index[axis] = _bounds(start, end, step, data.shape[axis])
    return data[tuple(index)]


@kernels.register("Slice", versions=(1,))
def slice_1(
    data: Any, *, axes: tuple[int, ...] | None = None, ends: tuple[int, ...],
    starts: tuple[int, ...],
) -> Any:  # fmt: skip
    """Slice with attributes (step 1)."""
    return _slice(data, starts, ends, axes, None)


@kernels.register("Slice", versions=(10, 11, 13), host_inputs=(1, 2, 3, 4))
def slice_(data: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Any:
    """Slice with inputs; negative steps go backwards."""
    return _slice(data, starts, ends, axes, steps)


@kernels.register("Gather", versions=(1, 11, 13))
def gather(data: Any, indices: Any, *, axis: int = 0) -> Any:
    """data indexed by ``indices`` along ``axis`` (negative indices count from the end)."""
    return np.take(data, indices, axis=axis)


@kernels.register("GatherElements", versions=(11, 13))
def gather_elements(data: Any, indices: Any, *, axis: int = 0) -> Any:
    """out[i][j][k] = data[indices[i][j][k]][j][k] (for axis 0), and so on.

    One ``np.take`` of flat positions (index * stride + the other coordinates' offset):
    about twice as fast as ``np.take_along_axis``, which builds an index array per axis.
    """
    data = np.asarray(data)
    axis = axis + data.ndim if axis < 0 else axis
    size = data.shape[axis]
    indices = checked_indices(indices, size, "GatherElements", f"axis {axis} of size {size}")
    pitch = [int(np.prod(data.shape[d + 1 :], dtype=np.int64)) for d in range(data.ndim)]
    flat = indices * pitch[axis]
    for d, coord in enumerate(np.indices(indices.shape, sparse=True)):
        if d != axis and indices.shape[d] > 1:
            flat = flat + coord * pitch[d]
    return np.take(np.ascontiguousarray(data).reshape(-1), flat)


@kernels.register("GatherND", versions=(11, 12, 13))
def gather_nd(data: Any, indices: Any, *, batch_dims: int = 0) -> Any:
    """Gather slices of ``data`` at index tuples (the last dim of ``indices``)."""
    data, indices = np.asarray(data), np.asarray(indices, dtype=np.int64)
    b = batch_dims
    k = indices.shape[-1]
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch, *data.shape[b:]))
    flat_idx = indices.reshape(batch, -1, k)
    rows = np.arange(batch).reshape(batch, 1)
    picked = flat_data[(rows, *(flat_idx[:, :, j] for j in range(k)))]
    return picked.reshape(indices.shape[:-1] + data.shape[b + k :])


def _order_key(x: np.ndarray, largest: bool) -> np.ndarray:
    """A key whose ascending stable order is x's requested order."""
    if not largest:
        return x
    return -x if x.dtype.kind == "f" else np.invert(x)


def _topk(x: Any, k: int, axis: int, largest: int) -> tuple[Any, Any]:
    x = np.asarray(x)
    key = _order_key(x, bool(largest))
    idx = None
    if x.ndim and k > 0 and x.shape[axis] >= max(256, 8 * k):  # few of many: no full sort
        first = _first_k(np.moveaxis(key, axis, -1), k)
        idx = None if first is None else np.moveaxis(first, -1, axis)
    if idx is None:
        order = np.argsort(key, axis=axis, kind="stable")
        idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64, copy=False)


def _first_k(key: np.ndarray, k: int) -> np.ndarray | None:
    """Indices of the k first elements of each row (last axis) in stable ascending order of
    ``key``, without sorting whole rows: a partition finds the k smallest keys, and only
    they are sorted (by key, then index). Where keys equal to the k-th one were left out,
    the partition's choice among them is redone to keep the lowest indices, as a stable
    sort does. None when a k-th key is NaN (the stable sort then decides)."""
    rows = key.reshape(-1, key.shape[-1])
    picked = np.argpartition(rows, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(rows, picked, axis=1)
    kth = values.max(axis=1, keepdims=True)
    if kth.dtype.kind in "fc" and np.isnan(kth).any():
        return None
    for r in np.flatnonzero((rows <= kth).sum(axis=1) > k):  # ties across the k-th place
        row, bound = rows[r], kth[r, 0]
        below = np.flatnonzero(row < bound)
        equal = np.flatnonzero(row == bound)[: k - below.size]
        picked[r] = np.concatenate([below, equal])
        values[r] = row[picked[r]]
    order = np.lexsort((picked, values), axis=1)
    return np.take_along_axis(picked, order, axis=1).reshape(*key.shape[:-1], k)


@kernels.register("TopK", versions=(1,), dtypes=NUMERIC)
def topk_1(X: Any, *, axis: int = -1, k: int) -> tuple[Any, Any]:
    """The k largest values along ``axis`` and their indices (ties: lower index first)."""
    return _topk(X, k, axis, 1)


@kernels.register("TopK", versions=(10,), dtypes=NUMERIC, host_inputs=(1,))
def topk_10(X: Any, K: Any, *, axis: int = -1) -> tuple[Any, Any]:
    """The K largest values along ``axis`` and their indices (ties: lower index first)."""
    return _topk(X, int(np.reshape(K, -1)[0]), axis, 1)


@kernels.register("TopK", versions=(11, 24), check=input_dtypes(i0=NUMERIC), host_inputs=(1,))
def topk(X: Any, K: Any, *, axis: int = -1, largest: int = 1, sorted: int = 1) -> tuple[Any, Any]:
    """The K largest (or smallest) values along ``axis``, sorted, and their indices."""
    return _topk(X, int(np.reshape(K, -1)[0]), axis, largest)


def _arg(fn: Any, x: Any, axis: int, keepdims: int, select_last_index: int) -> Any:
    x = np.asarray(x)
    if not select_last_index:
        return fn(x, axis=axis, keepdims=bool(keepdims)).astype(np.int64)
    last = x.shape[axis] - 1
    flipped = fn(np.flip(x, axis=axis), axis=axis, keepdims=bool(keepdims))
    return (last - flipped).astype(np.int64)


@kernels.register("ArgMax", versions=(1, 11, 12, 13), dtypes=NUMERIC)
def arg_max(data: Any, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Any:
    """Index of the maximum along ``axis`` (first occurrence unless ``select_last_index``)."""
    return _arg(np.argmax, data, axis, keepdims, select_last_index)


@kernels.register("ArgMin", versions=(1, 11, 12, 13), dtypes=NUMERIC)
def arg_min(data: Any, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Any:
    """Index of the minimum along ``axis`` (first occurrence unless ``select_last_index``)."""
    return _arg(np.argmin, data, axis, keepdims, select_last_index)


@kernels.register("CumSum", versions=(11, 14), check=input_dtypes(i0=NUMERIC), host_inputs=(1,))
def cum_sum(x: Any, axis: Any, *, exclusive: int = 0, reverse: int = 0) -> Any:
    """Running sum along ``axis``, optionally exclusive and/or from the end."""
    x = np.asarray(x)
    axis = int(np.reshape(axis, -1)[0])
    src = np.flip(x, axis=axis) if reverse else x
    acc = np.float32 if x.dtype == np.float16 else x.dtype
    y = np.cumsum(src, axis=axis, dtype=acc).astype(x.dtype, copy=False)
    if exclusive:
        y = np.roll(y, 1, axis=axis)
        y[(slice(None),) * (axis % x.ndim) + (0,)] = 0
    return np.flip(y, axis=axis) if reverse else y


@kernels.register("NonZero", versions=(9, 13))
def non_zero(X: Any) -> Any:
    """Indices of the non-zero elements, one row per dim (int64, shape (rank, count))."""
    x = np.asarray(X)
    if x.ndim == 0:
        return np.zeros((0, int(np.count_nonzero(x))), dtype=np.int64)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


def _one_hot(indices: Any, depth: Any, values: Any, axis: int, wrap: bool) -> Any:
    values = np.asarray(values)
    depth = int(np.reshape(depth, -1)[0])
    ind = np.asarray(indices).astype(np.int64)
    if wrap:
        ind = np.where(ind < 0, ind + depth, ind)
    rank = ind.ndim + 1
    axis = axis + rank if axis < 0 else axis
    classes = np.arange(depth).reshape((depth,) + (1,) * (rank - 1 - axis))
    hot = np.expand_dims(ind, axis) == classes
    return np.where(hot, values[1], values[0]).astype(values.dtype, copy=False)


@kernels.register("OneHot", versions=(9,))
def one_hot_9(indices: Any, depth: Any, values: Any, *, axis: int = -1) -> Any:
    """One-hot along ``axis``: values[1] at each index in [0, depth), values[0] elsewhere."""
    return _one_hot(indices, depth, values, axis, wrap=False)


@kernels.register("OneHot", versions=(11, 28))
def one_hot(indices: Any, depth: Any, values: Any, *, axis: int = -1) -> Any:
    """One-hot along ``axis``; indices in [-depth, -1] count from the end."""
    return _one_hot(indices, depth, values, axis, wrap=True)


@kernels.register("Trilu", versions=(14,), host_inputs=(1,))
def trilu(input: Any, k: Any = None, *, upper: int = 1) -> Any:
    """Keep the upper (or lower) triangle of the last two dims, offset by ``k``."""
    offset = 0 if k is None else int(np.reshape(k, -1)[0])
    return np.triu(input, offset) if upper else np.tril(input, offset)


@kernels.register("Einsum", versions=(12, 28), dtypes=NUMERIC)
def einsum(*Inputs: Any, equation: str) -> Any:
    """numpy's einsum (with BLAS-backed contraction order for float inputs)."""
    eq = equation.replace(" ", "")
    floating = all(np.asarray(x).dtype.kind == "f" for x in Inputs)
    return np.asarray(np.einsum(eq, *Inputs, optimize=floating and len(Inputs) > 1))
