"""Data movement: Shape, Reshape, Transpose, Concat, Slice, Gather, (Un)Squeeze, Flatten,
Expand, Split, ConstantOfShape, Dropout (inference).

Shape-like inputs (a Reshape's shape, a Slice's starts...) are ``host_inputs``: they stay
numpy, so no device sync is needed to read them. Shape returns a host array, and integer
tensors derived from host values stay on the host (see :mod:`onnxep_cupy.compiler`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cupy._backend import cupy_status, xp_of
from onnxep_cupy._registry import ANY_TENSOR, kernels

__all__ = ["reshape", "slice_", "target_shape"]

_LATEST = (21, 23, 24, 25)  # versions that only widened the type lists


@kernels.register("Shape", versions=(1, 13, 15, 19, *_LATEST), dtypes=ANY_TENSOR)
def shape(data: Any, *, end: int | None = None, start: int = 0) -> np.ndarray:
    """The shape as a host int64 array (``start``/``end`` clamp as Python slices do)."""
    return np.array(data.shape[start:end], dtype=np.int64)


def target_shape(current: Sequence[int], shape: Any, allowzero: int) -> tuple[int, ...]:
    """Reshape's target: 0 copies the input dim (unless ``allowzero``), -1 is inferred."""
    dims = [int(d) for d in np.asarray(shape).reshape(-1)]
    if not allowzero:
        dims = [current[i] if d == 0 else d for i, d in enumerate(dims)]
    return tuple(dims)


@kernels.register(
    "Reshape", versions=(5, 13, 14, 19, *_LATEST), dtypes=ANY_TENSOR, host_inputs=(1,)
)
def reshape(data: Any, shape: Any, *, allowzero: int = 0) -> Any:
    """A view when the layout allows, else a copy."""
    return data.reshape(target_shape(data.shape, shape, allowzero))


@kernels.register("Flatten", versions=(1, 9, 11, 13, *_LATEST), dtypes=ANY_TENSOR)
def flatten(input: Any, *, axis: int = 1) -> Any:
    """2-D: the dims before ``axis`` times the dims from it."""
    axis = axis + input.ndim if axis < 0 else axis
    outer = int(np.prod(input.shape[:axis], dtype=np.int64))
    return input.reshape(outer, int(np.prod(input.shape[axis:], dtype=np.int64)))


@kernels.register("Transpose", versions=(1, 13, *_LATEST), dtypes=ANY_TENSOR)
def transpose(data: Any, *, perm: tuple[int, ...] | None = None) -> Any:
    """A strided view; consumers that need contiguous memory copy it themselves."""
    return data.transpose(perm) if perm is not None else data.transpose()


@kernels.register("Concat", versions=(4, 11, 13), dtypes=ANY_TENSOR)
def concat(*inputs: Any, axis: int) -> Any:
    """Join along ``axis``; host inputs join device ones on the device."""
    xp = xp_of(*inputs)
    return xp.concatenate([xp.asarray(x) for x in inputs], axis=axis)


def _slice_bounds(dim: int, start: int, end: int, step: int) -> slice:
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, -1), dim - 1), min(max(end, -1), dim - 1)
    if start < 0:
        return slice(0, 0)
    return slice(start, end if end >= 0 else None, step)


@kernels.register("Slice", versions=(10, 11, 13), dtypes=ANY_TENSOR, host_inputs=(1, 2, 3, 4))
def slice_(data: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Any:
    """ONNX clamping rules for starts/ends/steps (including negative steps); returns a view."""
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes_ = range(len(starts)) if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    steps_ = [1] * len(starts) if steps is None else [int(s) for s in np.asarray(steps).reshape(-1)]
    index = [slice(None)] * data.ndim
    for a, s, e, st in zip(axes_, starts, ends, steps_):
        a = a + data.ndim if a < 0 else a
        index[a] = _slice_bounds(data.shape[a], s, e, st)
    return data[tuple(index)]


@kernels.register("Gather", versions=(1, 11, 13), dtypes=ANY_TENSOR)
def gather(data: Any, indices: Any, *, axis: int = 0) -> Any:
    """``take`` along ``axis``; negative indices count from the end."""
    xp = xp_of(data, indices)
    dim = data.shape[axis]
    idx = xp.asarray(indices)
    idx = xp.where(idx < 0, idx + dim, idx)
    return xp.take(xp.asarray(data), idx, axis=axis)


def _axes_of(axes: Any, rank: int) -> list[int]:
    return sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))


@kernels.register("Unsqueeze", versions=(13, *_LATEST), dtypes=ANY_TENSOR, host_inputs=(1,))
def unsqueeze(data: Any, axes: Any) -> Any:
    """Insert size-1 axes at ``axes`` (positions in the output)."""
    shape = list(data.shape)
    for a in _axes_of(axes, data.ndim + np.asarray(axes).size):
        shape.insert(a, 1)
    return data.reshape(shape)


@kernels.register("Unsqueeze", versions=(1, 11), dtypes=ANY_TENSOR)
def unsqueeze_11(data: Any, *, axes: tuple[int, ...]) -> Any:
    """Unsqueeze-1/11: the axes are an attribute."""
    return unsqueeze(data, np.asarray(axes, np.int64))


@kernels.register("Squeeze", versions=(13, *_LATEST), dtypes=ANY_TENSOR, host_inputs=(1,))
def squeeze(data: Any, axes: Any = None) -> Any:
    """Drop size-1 axes (all of them when ``axes`` is absent)."""
    if axes is None or np.asarray(axes).size == 0:
        return data.reshape([d for d in data.shape if d != 1])
    drop = set(_axes_of(axes, data.ndim))
    return data.reshape([d for i, d in enumerate(data.shape) if i not in drop])


@kernels.register("Squeeze", versions=(1, 11), dtypes=ANY_TENSOR)
def squeeze_11(data: Any, *, axes: tuple[int, ...] | None = None) -> Any:
    """Squeeze-1/11: the axes are an attribute."""
    return squeeze(data, None if axes is None else np.asarray(axes, np.int64))


@kernels.register("Expand", versions=(8, 13), dtypes=ANY_TENSOR, host_inputs=(1,))
def expand(input: Any, shape: Any) -> Any:
    """Broadcast to ``broadcast(input.shape, shape)``, materialised (outputs are writable)."""
    xp = xp_of(input)
    target = np.broadcast_shapes(tuple(input.shape), tuple(int(d) for d in np.asarray(shape)))
    return xp.ascontiguousarray(xp.broadcast_to(input, target))


def split(
    input: Any,
    split: Any = None,
    *,
    axis: int = 0,
    num_outputs: int | None = None,
    parts: int = 1,
) -> tuple[Any, ...]:
    """Views of consecutive parts; without ``split``, ``parts`` equal ones (the last smaller)."""
    dim = input.shape[axis]
    if split is not None and np.asarray(split).size:
        sizes = [int(s) for s in np.asarray(split).reshape(-1)]
    else:
        chunk = -(-dim // (num_outputs or parts))
        sizes = [max(0, min(chunk, dim - i * chunk)) for i in range(num_outputs or parts)]
    bounds = np.cumsum([0, *sizes])
    index: list[slice] = [slice(None)] * input.ndim
    pieces = []
    for b, e in itertools.pairwise(bounds.tolist()):
        index[axis] = slice(int(b), int(e))
        pieces.append(input[tuple(index)])
    return tuple(pieces)


@kernels.register("Split", versions=(13, 18), dtypes=ANY_TENSOR, host_inputs=(1,), factory=True)
def split_for(info: NodeInfo) -> Any:
    """Split bound to its node: an equal split makes as many parts as the node has outputs."""
    return functools.partial(split, parts=len(info.node.outputs), **info.attrs)


def _device_float_module() -> Any:
    ok, _ = cupy_status()
    if ok:
        from onnxep_cupy._backend import cupy

        return cupy()
    return np


@kernels.register("ConstantOfShape", versions=(9, 20, 21, 23, 24, 25), host_inputs=(0,))
def constant_of_shape(input: Any, *, value: np.ndarray | None = None) -> Any:
    """A filled tensor: integer fills stay on the host (shape data), others go to the GPU."""
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    dims = tuple(int(d) for d in np.asarray(input).reshape(-1))
    xp = np if fill.dtype.kind in "iub" else _device_float_module()
    return xp.full(dims, fill[0], dtype=fill.dtype)


def dropout_7(data: Any, *, ratio: float = 0.5, mask: bool = False) -> tuple[Any, Any]:
    """Inference Dropout-7/10 is the identity; the mask, when the node names it, is all ones."""
    if not mask:
        return data, None
    xp = xp_of(data)
    return data, xp.ones(data.shape, dtype=data.dtype if mask == "T" else np.bool_)


def dropout(
    data: Any,
    ratio: Any = None,
    training_mode: Any = None,
    *,
    seed: int | None = None,
    mask: bool = False,
) -> tuple[Any, Any]:
    """Dropout-12+: identity unless ``training_mode`` is true, which is refused at run time."""
    if training_mode is not None and bool(np.asarray(training_mode)):
        raise ValueError("Dropout with training_mode=True is not supported")
    return dropout_7(data, mask=mask)


@kernels.register(
    "Dropout", versions=(7, 10, 12, 13, 22), dtypes=ANY_TENSOR, host_inputs=(1, 2), factory=True
)
def dropout_for(info: NodeInfo) -> Any:
    """Dropout bound to its node: a mask (all ones) is made only if the node names one."""
    fn = dropout_7 if info.node.key.since_version < 12 else dropout
    wants = len(info.node.outputs) > 1 and bool(info.node.outputs[1])
    mask: bool | str = ("T" if info.node.key.since_version == 7 else True) if wants else False
    return functools.partial(fn, mask=mask, **info.attrs)
