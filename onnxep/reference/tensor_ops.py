"""Shape and data-movement kernels: Reshape, Transpose, Concat, Split, (Un)Squeeze, Flatten,
Expand, Tile, Pad, Shape, Size, Identity, Constant, ConstantOfShape, Range, DepthToSpace,
SpaceToDepth.

Kernels return numpy views where numpy does (Reshape, Transpose, Squeeze...): kernels never
write into their inputs, so sharing memory is safe. Constants are built once per plan and
shared read-only between runs, unless they are graph outputs (then each run gets a copy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import ALL, dtype_name, factory, fresh, input_dtypes
from onnxep.reference._registry import kernels
from onnxep.registry import since_versions

__all__: list[str] = []


@kernels.register("Identity", versions=since_versions("Identity"))
def identity(input: Any) -> Any:
    """The input itself (tensors, sequences and optionals alike)."""
    return input


@kernels.register("Reshape", versions=since_versions("Reshape", first=5), host_inputs=(1,))
def reshape(data: Any, shape: Any, *, allowzero: int = 0) -> Any:
    """Reshape; a 0 in ``shape`` copies the input's dim unless ``allowzero``."""
    dims = np.asarray(shape).tolist()
    if not allowzero and 0 in dims:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    try:
        return np.reshape(data, dims)
    except ValueError as exc:  # name both shapes, as onnxruntime does
        raise ValueError(
            f"the input tensor cannot be reshaped to the requested shape: input shape "
            f"{list(np.shape(data))} ({np.size(data)} values), requested "
            f"{np.asarray(shape).tolist()}"
        ) from exc


@kernels.register("Transpose", versions=since_versions("Transpose"))
def transpose(data: Any, *, perm: tuple[int, ...] | None = None) -> Any:
    """Permute the axes (reversed when ``perm`` is absent)."""
    return np.transpose(data, perm)


@kernels.register("Concat", versions=(4, 11, 13), fresh_output=True)
def concat(*inputs: Any, axis: int) -> Any:
    """Concatenate along ``axis``."""
    first = np.asarray(inputs[0])
    if first.ndim == 0 or any(np.asarray(x).dtype != first.dtype for x in inputs):
        return np.concatenate(inputs, axis=axis)
    shape = list(first.shape)
    shape[axis] = sum(np.shape(x)[axis] for x in inputs)
    return np.concatenate(inputs, axis=axis, out=fresh(shape, first.dtype))


def _split(x: Any, sizes: Any, axis: int, n: int) -> tuple[Any, ...]:
    dim = x.shape[axis]
    if sizes is None:
        chunk = -(-dim // n) if n else dim
        sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(n)]
    offsets = np.cumsum([int(s) for s in sizes])[:-1]
    return tuple(np.split(x, offsets, axis=axis))


@kernels.register("Split", versions=(2, 11), factory=True)
@factory(axis=0)
def split_attr(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """Split by the ``split`` attribute, else into equal parts (one per output)."""
    sizes, axis, n = attrs.get("split"), attrs["axis"], len(info.node.outputs)
    return lambda input: _split(input, sizes, axis, n)


@kernels.register("Split", versions=(13, 18), factory=True, host_inputs=(1,))
@factory(axis=0)
def split_input(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """Split by the ``split`` input, else into ``num_outputs`` parts (the last may be smaller)."""
    axis = attrs["axis"]
    n = attrs.get("num_outputs") or len(info.node.outputs)
    return lambda input, split=None: _split(input, split, axis, n)


def _axes_list(axes: Any) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(int(a) for a in np.asarray(axes).reshape(-1))


@kernels.register("Unsqueeze", versions=(1, 11))
def unsqueeze_attr(data: Any, *, axes: tuple[int, ...]) -> Any:
    """Insert size-1 dims at ``axes`` (positions in the output)."""
    return unsqueeze(data, axes)


@kernels.register("Unsqueeze", versions=since_versions("Unsqueeze", first=13), host_inputs=(1,))
def unsqueeze(data: Any, axes: Any) -> Any:
    """Insert size-1 dims at ``axes`` (positions in the output)."""
    shape = list(np.shape(data))
    positions = np.asarray(axes).reshape(-1).tolist()
    rank = len(shape) + len(positions)
    for axis in sorted(a + rank if a < 0 else a for a in positions):
        shape.insert(axis, 1)
    return np.reshape(data, shape)


@kernels.register("Squeeze", versions=(1, 11))
def squeeze_attr(data: Any, *, axes: tuple[int, ...] | None = None) -> Any:
    """Remove the size-1 dims in ``axes`` (all of them when absent)."""
    return np.squeeze(data, axis=axes)


@kernels.register("Squeeze", versions=since_versions("Squeeze", first=13), host_inputs=(1,))
def squeeze(data: Any, axes: Any = None) -> Any:
    """Remove the size-1 dims in ``axes`` (all of them when absent or empty)."""
    return np.squeeze(data, axis=_axes_list(axes) or None)


@kernels.register("Flatten", versions=since_versions("Flatten"))
def flatten(input: Any, *, axis: int = 1) -> Any:
    """Reshape to 2-D: dims before ``axis`` and the rest."""
    shape = np.shape(input)
    axis = axis + len(shape) if axis < 0 else axis
    return np.reshape(input, (math.prod(shape[:axis]), math.prod(shape[axis:])))


@kernels.register("Expand", versions=(8, 13), host_inputs=(1,))
def expand(input: Any, shape: Any) -> Any:
    """Broadcast to ``shape`` (bidirectionally), as a new array."""
    target = np.broadcast_shapes(np.shape(input), tuple(int(d) for d in shape))
    return np.array(np.broadcast_to(input, target))


@kernels.register("Tile", versions=(6, 13), host_inputs=(1,))
def tile(input: Any, repeats: Any) -> Any:
    """Repeat the whole tensor ``repeats[i]`` times along each axis."""
    return np.tile(input, [int(r) for r in repeats])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad(data: Any, pads: Any, mode: str, value: Any, axes: Any = None) -> Any:
    data = np.asarray(data)
    rank = data.ndim
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in np.reshape(axes, -1)]
    n = len(axes)
    widths = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        widths[axis] = [pads[i], pads[i + n]]
    crop = tuple(slice(max(-b, 0), data.shape[a] - max(-e, 0)) for a, (b, e) in enumerate(widths))
    data = data[crop]  # negative pads remove elements
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        return np.pad(data, widths, mode="constant", constant_values=value)
    return np.pad(data, widths, mode=_PAD_MODES[mode])


def _pad_check(info: NodeInfo) -> str | None:
    mode = info.attrs.get("mode", "constant")
    if mode not in _PAD_MODES:
        return f"Pad mode {mode!r} is not implemented"
    return input_dtypes(i0=ALL)(info)


@kernels.register("Pad", versions=(2,), check=_pad_check)
def pad_2(data: Any, *, pads: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> Any:
    """Pad with attributes ``pads`` and ``value`` (negative pads crop)."""
    return _pad(data, pads, mode, value)


@kernels.register(
    "Pad", versions=since_versions("Pad", first=11), check=_pad_check, host_inputs=(1, 3)
)
def pad(
    data: Any, pads: Any, constant_value: Any = None, axes: Any = None, *, mode: str = "constant"
) -> Any:
    """Pad with ``pads`` per axis in ``axes`` (all when absent); negative pads crop."""
    value = 0 if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
    return _pad(data, pads, mode, value, axes)


@kernels.register("Shape", versions=(1, 13))
def shape_1(data: Any) -> Any:
    """The shape as int64."""
    return np.array(np.shape(data), dtype=np.int64)


@kernels.register("Shape", versions=since_versions("Shape", first=15))
def shape(data: Any, *, end: int | None = None, start: int = 0) -> Any:
    """The shape as int64, sliced to ``[start, end)`` (clamped like Python slicing)."""
    return np.array(np.shape(data)[start:end], dtype=np.int64)


@kernels.register("Size", versions=since_versions("Size"))
def size(data: Any) -> Any:
    """The number of elements, int64 scalar."""
    return np.array(np.size(data), dtype=np.int64)


def _shared(array: np.ndarray, info: NodeInfo) -> Callable[..., Any]:
    """A kernel returning ``array`` every run: read-only, or a fresh copy for graph outputs."""
    if info.node.outputs[0] in info.graph.outputs:
        return lambda *_: array.copy()
    array.flags.writeable = False
    return lambda *_: array


_CONSTANT_ATTRS: dict[str, Callable[[Any], np.ndarray]] = {
    "value": np.array,
    "value_float": lambda v: np.array(v, dtype=np.float32),
    "value_floats": lambda v: np.array(v, dtype=np.float32),
    "value_int": lambda v: np.array(v, dtype=np.int64),
    "value_ints": lambda v: np.array(v, dtype=np.int64),
    "value_string": lambda v: np.array(v, dtype=object),
    "value_strings": lambda v: np.array(v, dtype=object),
}


@kernels.register(
    "Constant",
    versions=since_versions("Constant", first=9),
    factory=True,
    check=lambda n: "sparse_value is left to onnx" if "sparse_value" in n.attrs else None,
)
@factory()
def constant(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """The constant, built once from whichever ``value*`` attribute is set."""
    (name,) = (k for k in attrs if k in _CONSTANT_ATTRS)
    return _shared(_CONSTANT_ATTRS[name](attrs[name]), info)


@kernels.register(
    "ConstantOfShape",
    versions=since_versions("ConstantOfShape"),
    factory=True,
    host_inputs=(0,),
)
@factory()
def constant_of_shape(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """A tensor of ``shape`` filled with ``value`` (float32 0 by default).

    The last result is kept (read-only) and returned again while the shape is unchanged, as
    onnxruntime folds constant subgraphs; a graph output gets a fresh array every run.
    """
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32))).reshape(-1)[:1]
    scalar = value.reshape(())
    if info.node.outputs[0] in info.graph.outputs:
        return lambda input: np.full(tuple(int(d) for d in input), scalar)
    cache: tuple[Any, ...] = (None, None, None)  # (shape input, dims, array), swapped whole

    def run(input: Any) -> Any:
        nonlocal cache
        if input is cache[0]:  # the same shape tensor (an initializer): the same constant
            return cache[2]
        dims = tuple(np.asarray(input).reshape(-1).tolist())
        array = cache[2]
        if dims != cache[1]:
            array = np.full(dims, scalar)
            array.flags.writeable = False
        cache = (input, dims, array)
        return array

    return run


_RANGE_TYPES = ("float32", "float64", "int16", "int32", "int64")


def _range_check(info: NodeInfo) -> str | None:
    if dtype_name(info, 0) == "float16" and info.attrs.get("stash_type", 1) != 1:
        return "float16 Range with stash_type=0 is left to onnx"
    return None


@kernels.register("Range", versions=(11,), dtypes=_RANGE_TYPES)
@kernels.register("Range", versions=(27,), dtypes=(*_RANGE_TYPES, "float16"), check=_range_check)
def range_(start: Any, limit: Any, delta: Any, *, stash_type: int = 1) -> Any:
    """start + i * delta for i = 0, 1, ... while before limit (float16 computed in float32)."""
    start, limit, delta = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
    dtype = start.dtype
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    if dtype.kind == "i":
        return (int(start) + int(delta) * np.arange(count, dtype=np.int64)).astype(dtype)
    work = np.float32 if dtype == np.float16 else dtype.type
    steps = np.arange(count, dtype=work)
    return (work(start) + work(delta) * steps).astype(dtype, copy=False)


@kernels.register("DepthToSpace", versions=(1, 11, 13, 28))
def depth_to_space(input: Any, *, blocksize: int, mode: str = "DCR") -> Any:
    """Move depth blocks into spatial blocks (DCR: depth-column-row; CRD: column-row-depth)."""
    b, c, h, w = input.shape
    bs = blocksize
    if mode == "DCR":
        tmp = input.reshape(b, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        tmp = input.reshape(b, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return tmp.reshape(b, c // (bs * bs), h * bs, w * bs)


@kernels.register("SpaceToDepth", versions=(1, 13, 28))
def space_to_depth(input: Any, *, blocksize: int, mode: str = "DCR") -> Any:
    """Move spatial blocks into depth (DCR: blocks outer, channels inner; CRD: the reverse)."""
    b, c, h, w = input.shape
    bs = blocksize
    tmp = input.reshape(b, c, h // bs, bs, w // bs, bs)
    order = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    return tmp.transpose(order).reshape(b, c * bs * bs, h // bs, w // bs)
