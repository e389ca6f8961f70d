"""Tensor manipulation: Transpose, Concat, Reshape, Flatten, Squeeze, Unsqueeze, Slice,
Expand, Gather, Shape, Constant, ConstantOfShape, inference-mode Dropout.

Transpose, Slice and Expand copy through the parallel offset-table kernel of
:mod:`onnxep_numba._gather`; reshapes return views (no copy); Concat and Gather are
single memory copies left to numpy.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.registry import since_versions
from onnxep_numba._gather import GatherPlan, gather_axes, plan_axes, run_plan, source_strides
from onnxep_numba._registry import (
    SCALARS,
    all_checks,
    check_dtypes,
    contiguous,
    kernels,
    only_outputs,
)

__all__ = ["transpose", "transpose_view"]

DATA = check_dtypes((0,), SCALARS)


@kernels.register("Transpose", versions=since_versions("Transpose"), check=DATA)
def transpose(data: np.ndarray, *, perm: tuple[int, ...] = ()) -> np.ndarray:
    """A transposed copy (reversed axes when ``perm`` is empty)."""
    x = contiguous(data)
    perm = tuple(perm) or tuple(range(x.ndim - 1, -1, -1))
    plan, shape = _transpose_plan(x.shape, perm)
    return run_plan(plan, x).reshape(shape)


@functools.lru_cache(maxsize=512)
def _transpose_plan(
    shape: tuple[int, ...], perm: tuple[int, ...]
) -> tuple[GatherPlan, tuple[int, ...]]:
    """Offset tables of a transpose, runs of axes that stay adjacent merged into one."""
    strides = source_strides(shape)
    merged: list[list[int]] = []  # [size, stride, source axis]
    for p in perm:
        if merged and merged[-1][2] == p - 1:
            merged[-1] = [merged[-1][0] * shape[p], strides[p], p]
        else:
            merged.append([shape[p], strides[p], p])
    maps = [np.arange(size, dtype=np.int64) * stride for size, stride, _ in merged]
    return plan_axes(maps), tuple(shape[p] for p in perm)


def transpose_view(data: np.ndarray, *, perm: tuple[int, ...] = ()) -> np.ndarray:
    """A transposed view, no copy: for a consumer that reads strides (MatMul's BLAS call)."""
    return np.transpose(data, tuple(perm) or None)


@kernels.register("Concat", versions=(4, 11, 13), check=check_dtypes(range(64), SCALARS))
def concat(*inputs: np.ndarray, axis: int) -> np.ndarray:
    """Join along ``axis`` (one copy)."""
    return np.concatenate(inputs, axis=axis)


@kernels.register(
    "Reshape", versions=since_versions("Reshape", first=5), check=DATA, host_inputs=(1,)
)
def reshape(data: np.ndarray, shape: np.ndarray, *, allowzero: int = 0) -> np.ndarray:
    """A view with the new shape (0 copies a dim unless ``allowzero``; -1 is inferred)."""
    dims = [int(d) for d in np.asarray(shape).reshape(-1)]
    if not allowzero:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return np.reshape(data, dims)


@kernels.register("Flatten", versions=since_versions("Flatten"), check=DATA)
def flatten(input: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """A 2-D view: dims before ``axis`` by dims from it on."""
    axis = axis % input.ndim if input.ndim and axis < 0 else axis
    outer = int(np.prod(input.shape[:axis], dtype=np.int64))
    return np.reshape(input, (outer, -1) if outer else (0, int(np.prod(input.shape[axis:]))))


def _axes(value: Any) -> tuple[int, ...]:
    return () if value is None else tuple(int(a) for a in np.asarray(value).reshape(-1))


def _squeeze(data: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if not axes:
        return np.reshape(data, [d for d in data.shape if d != 1])
    return np.squeeze(data, axis=tuple(a % data.ndim for a in axes))


def _unsqueeze(data: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    rank = data.ndim + len(axes)
    shape = list(data.shape)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    return np.reshape(data, shape)


@kernels.register("Squeeze", versions=(1, 11), check=DATA)
def squeeze_attr(data: np.ndarray, *, axes: tuple[int, ...] = ()) -> np.ndarray:
    """Drop size-1 dims (``axes`` as an attribute)."""
    return _squeeze(data, tuple(axes))


@kernels.register(
    "Squeeze", versions=since_versions("Squeeze", first=13), check=DATA, host_inputs=(1,)
)
def squeeze(data: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    """Drop size-1 dims (``axes`` as an input)."""
    return _squeeze(data, _axes(axes))


@kernels.register("Unsqueeze", versions=(1, 11), check=DATA)
def unsqueeze_attr(data: np.ndarray, *, axes: tuple[int, ...] = ()) -> np.ndarray:
    """Insert size-1 dims (``axes`` as an attribute)."""
    return _unsqueeze(data, tuple(axes))


@kernels.register(
    "Unsqueeze", versions=since_versions("Unsqueeze", first=13), check=DATA, host_inputs=(1,)
)
def unsqueeze(data: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Insert size-1 dims (``axes`` as an input)."""
    return _unsqueeze(data, _axes(axes))


@kernels.register("Slice", versions=(10, 11, 13), check=DATA, host_inputs=(1, 2, 3, 4))
def slice_(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    axes: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``data[starts:ends:steps]`` along ``axes`` (ends clamped as numpy does)."""
    x = contiguous(data)
    index = [slice(None)] * x.ndim
    listed = _axes(axes) or tuple(range(len(_axes(starts))))
    step_list = _axes(steps) or (1,) * len(listed)
    for a, s, e, k in zip(listed, _axes(starts), _axes(ends), step_list):
        index[a % x.ndim] = slice(s, e, k)
    strides = source_strides(x.shape)
    maps = []
    for a, sl in enumerate(index):
        picked = np.arange(x.shape[a], dtype=np.int64)[sl]
        maps.append(picked * strides[a])
    return gather_axes(x, maps)


@kernels.register("Expand", versions=(8, 13), check=DATA, host_inputs=(1,))
def expand(input: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Broadcast to ``shape`` (numpy rules, both ways), as a contiguous copy."""
    x = contiguous(input)
    out_shape = np.broadcast_shapes(x.shape, tuple(_axes(shape)))
    padded = (1,) * (len(out_shape) - x.ndim) + x.shape
    strides = [0] * (len(out_shape) - x.ndim) + source_strides(x.shape)
    maps = [
        np.zeros(n, np.int64) if p == 1 else np.arange(n, dtype=np.int64) * s
        for n, p, s in zip(out_shape, padded, strides)
    ]
    return gather_axes(x, maps)


@kernels.register("Gather", versions=(1, 11, 13), check=DATA)
def gather(data: np.ndarray, indices: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """``take`` along ``axis``; negative indices count from the end."""
    idx = np.asarray(indices).astype(np.int64, copy=False)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return np.take(data, idx, axis=axis)


@kernels.register("Shape", versions=(1, 13), check=DATA)
def shape_v1(data: np.ndarray) -> np.ndarray:
    """The shape as int64."""
    return np.array(data.shape, dtype=np.int64)


@kernels.register("Shape", versions=since_versions("Shape", first=15), check=DATA)
def shape(data: np.ndarray, *, end: int | None = None, start: int = 0) -> np.ndarray:
    """The shape as int64, ``[start:end]``."""
    return np.array(data.shape[start:end], dtype=np.int64)


@kernels.register("ConstantOfShape", versions=since_versions("ConstantOfShape"), host_inputs=(0,))
def constant_of_shape(input: np.ndarray, *, value: np.ndarray | None = None) -> np.ndarray:
    """A tensor of ``input``'s shape filled with ``value`` (float32 zero by default)."""
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(tuple(int(d) for d in np.asarray(input).reshape(-1)), fill[0], dtype=fill.dtype)


def _constant_check(info: NodeInfo) -> str | None:
    given = [k for k in info.attrs if k.startswith(("value", "sparse"))]
    if len(given) != 1 or given[0] in ("sparse_value", "value_string", "value_strings"):
        return f"Constant with {given} is not implemented"
    return None


@kernels.register("Constant", versions=since_versions("Constant", first=9), check=_constant_check)
def constant(**attrs: Any) -> np.ndarray:
    """The attribute's value as a tensor."""
    ((name, value),) = attrs.items()
    dtype = {
        "value_float": np.float32,
        "value_floats": np.float32,
        "value_int": np.int64,
        "value_ints": np.int64,
    }.get(name)
    return np.asarray(value, dtype=dtype)


def _dropout_check(info: NodeInfo) -> str | None:
    if info.n_inputs > 2 and info.node.inputs[2]:
        mode = info.constant(2)
        if mode is None or bool(np.asarray(mode)):
            return "training_mode is not a constant false"
    return None


@kernels.register("Dropout", versions=(7, 10), check=all_checks(DATA, only_outputs(1)))
def dropout_attr(data: np.ndarray, *, ratio: float = 0.5) -> tuple[np.ndarray]:
    """Inference Dropout (``ratio`` as an attribute): the input itself (mask declined)."""
    return (data,)


@kernels.register("Dropout", versions=(12, 13, 22), check=all_checks(DATA, _dropout_check))
def dropout(
    data: np.ndarray,
    ratio: np.ndarray | None = None,
    training_mode: np.ndarray | None = None,
    *,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Inference Dropout: the input itself, and an all-true mask."""
    return data, np.ones(data.shape, dtype=bool)
