"""Pooling: MaxPool (with its Indices output), AveragePool, LpPool and their Global forms;
MaxUnpool, MaxPool's partial inverse.

Every kernel position is one vectorised numpy operation over all output pixels (no Python
loop over outputs). Windows follow onnxruntime's rules: the last window starts inside the
input or its begin padding (``ceil_mode``), padding never wins a max, and the average divides
by the taps inside the input (``count_include_pad=0``) or inside input and explicit pads (1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, factory, fresh, input_dtypes, scratch
from onnxep.reference._registry import kernels
from onnxep.reference.conv_ops import copy_out, padded

__all__: list[str] = []

_POOL_DEFAULTS: dict[str, Any] = {
    "auto_pad": "NOTSET",
    "ceil_mode": 0,
    "dilations": None,
    "pads": None,
    "strides": None,
}


def _check(info: NodeInfo) -> str | None:
    auto_pad = info.attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        return f"auto_pad={auto_pad!r} is not implemented"
    dilated = any(d != 1 for d in info.attrs.get("dilations") or ())
    if auto_pad != "NOTSET" and (info.attrs.get("ceil_mode") or dilated):
        return "auto_pad with ceil_mode or dilations is left to onnx (ambiguous in the spec)"
    return None


def _geometry(
    in_shape: Sequence[int], kernel: Sequence[int], a: dict[str, Any]
) -> tuple[list[int], list[int], list[int]]:
    """Output shape, begin pads and explicit end pads of a pooling (onnxruntime's rules)."""
    nd = len(in_shape)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    pads = a["pads"] or (0,) * (2 * nd)
    out, begin, end = [], [], []
    for i in range(nd):
        extent = (kernel[i] - 1) * dil[i] + 1
        size, s = in_shape[i], strides[i]
        if a["auto_pad"] in ("SAME_UPPER", "SAME_LOWER"):
            total = max((-(-size // s) - 1) * s + kernel[i] - size, 0)
            b = total // 2 if a["auto_pad"] == "SAME_UPPER" else total - total // 2
            e = total - b
        elif a["auto_pad"] == "VALID":
            b = e = 0
        else:
            b, e = pads[i], pads[i + nd]
        span = size + b + e - extent
        o = -(-span // s) + 1 if a["ceil_mode"] else span // s + 1
        if a["ceil_mode"] and (o - 1) * s >= size + b:
            o -= 1  # the last window would start in the end padding
        out.append(max(o, 0))
        begin.append(b)
        end.append(e)
    return out, begin, end


def _windows(xp: np.ndarray, kernel: Sequence[int], a: dict[str, Any], out: Sequence[int]) -> Any:
    """(tap, view) for each kernel position: the strided view of ``xp`` it reads."""
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    for pos in np.ndindex(*kernel):
        index = tuple(
            slice(p * d, p * d + s * (o - 1) + 1, s) for p, d, s, o in zip(pos, dil, strides, out)
        )
        yield pos, xp[(slice(None), slice(None), *index)]


def _end_padding(
    shape: Sequence[int], kernel: Sequence[int], a: dict[str, Any], out: Sequence[int],
    begin: Sequence[int],
) -> list[int]:  # fmt: skip
    """How far past its end each axis must be padded for every window of every output."""
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    return [
        max((o - 1) * s + (k - 1) * d + 1 - b - n, 0)
        for o, s, k, d, b, n in zip(out, strides, kernel, dil, begin, shape)
    ]


def _pad_for(x: np.ndarray, kernel: Sequence[int], a: dict[str, Any], value: Any) -> Any:
    """The input padded so that every window of every output fits, plus the geometry."""
    out, begin, end = _geometry(x.shape[2:], kernel, a)
    need = _end_padding(x.shape[2:], kernel, a, out, begin)
    return padded(x, begin, need, value), out, begin, end


def _reduced_windows(
    x: np.ndarray, kernel: Sequence[int], a: dict[str, Any], ufunc: np.ufunc, value: Any
) -> tuple[np.ndarray, list[int], list[int], list[int]]:
    """Every window of ``x`` reduced with ``ufunc`` (max or add; ``value`` pads), as a
    strided view (N, C, *out) of a scratch array to read once, plus the geometry."""
    out, begin, end = _geometry(x.shape[2:], kernel, a)
    need = _end_padding(x.shape[2:], kernel, a, out, begin)
    if (any(begin) or any(need)) and _fits_unpadded(x.shape[2:], kernel, a, out, begin):
        return _reduce_unpadded(x, kernel, a, out, begin, ufunc), out, begin, end
    xp = padded(x, begin, need, value)
    return _separable(xp, kernel, a, out, ufunc), out, begin, end


def _fits_unpadded(
    shape: Sequence[int], kernel: Sequence[int], a: dict[str, Any], out: Sequence[int],
    begin: Sequence[int],
) -> bool:  # fmt: skip
    """Whether every window starts at most kernel - 1 before the input, is undilated, and
    its stride-1 position lies inside the input (see :func:`_reduce_unpadded`)."""
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    return all(
        d == 1 and 0 <= b < k and (o - 1) * s < n
        for d, b, k, o, s, n in zip(dil, begin, kernel, out, strides, shape)
    )


def _reduce_unpadded(
    x: np.ndarray, kernel: Sequence[int], a: dict[str, Any], out: Sequence[int],
    begin: Sequence[int], ufunc: np.ufunc,
) -> np.ndarray:  # fmt: skip
    """Windows reduced without a padded copy of ``x`` (numpy copies a padded plane row by
    row, several times slower than a flat pass).

    Each axis's pass computes, at every input position p, the window starting at
    p - begin: flat shifted slices of the whole array give the positions whose window lies
    inside the axis, and the few border positions per axis are recomputed from their
    valid taps only. Output o is then position o * stride. Returns a strided view of a
    scratch array, read once into the output by the caller.
    """
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    spatial = x.shape[2:]
    src = np.ascontiguousarray(x)
    total, slot = src.size, 1
    for axis in reversed(range(nd)):
        k, first, n = kernel[axis], begin[axis], spatial[axis]
        if k == 1:
            continue
        pitch = math.prod(spatial[axis + 1 :])
        dst = scratch(slot, src.shape, src.dtype)
        flat_src, flat_dst = src.reshape(-1), dst.reshape(-1)
        span = total - (k - 1) * pitch  # positions whose window may lie inside the axis
        if span > 0:
            acc = flat_dst[first * pitch : first * pitch + span]
            ufunc(flat_src[:span], flat_src[pitch : pitch + span], out=acc)
            for tap in range(2, k):
                ufunc(acc, flat_src[tap * pitch : tap * pitch + span], out=acc)
        rows_src, rows_dst = src.reshape(-1, n, pitch), dst.reshape(-1, n, pitch)
        last = k - 1 - first
        for p in (*range(min(first, n)), *range(max(n - last, first), n)):
            taps = [t for t in range(p - first, p - first + k) if 0 <= t < n]
            np.copyto(rows_dst[:, p], rows_src[:, taps[0]])
            for t in taps[1:]:
                ufunc(rows_dst[:, p], rows_src[:, t], out=rows_dst[:, p])
        src, slot = dst, 3 - slot
    picks = tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out))
    return src[(slice(None), slice(None), *picks)]


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _separable(
    xp: np.ndarray, kernel: Sequence[int], a: dict[str, Any], out: Sequence[int], ufunc: np.ufunc
) -> np.ndarray:
    """Every window of the padded ``xp`` reduced with ``ufunc`` (max or add).

    Rectangular windows of max and sum are separable, one spatial axis at a time: sum(k)
    operations instead of prod(k). Each axis's pass runs on the flattened array, where a
    kernel tap is one contiguous shifted slice (numpy's long SIMD loops instead of a short
    loop per row); positions whose window would cross a row or plane edge hold garbage and
    are never read. The result is a strided view of a scratch array (valid until the next
    scratch use), read once into the output by the caller.
    """
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    spatial = xp.shape[2:]
    if 0 in xp.shape or 0 in out:
        return np.empty((*xp.shape[:2], *out), xp.dtype)
    src = np.ascontiguousarray(xp).reshape(-1)
    length = src.size  # the prefix of src that holds valid results so far
    slot = 1
    for axis in reversed(range(nd)):
        if kernel[axis] == 1:
            continue
        step = dil[axis] * math.prod(spatial[axis + 1 :])
        n = length - (kernel[axis] - 1) * step
        buffer = scratch(slot, (src.size,), xp.dtype)
        acc = buffer[:n]
        ufunc(src[:n], src[step : step + n], out=acc)
        for t in range(2, kernel[axis]):
            ufunc(acc, src[t * step : t * step + n], out=acc)
        src, length, slot = buffer, n, 3 - slot
    picks = tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out))
    return src.reshape(xp.shape)[(slice(None), slice(None), *picks)]


def _max_pool(x: Any, kernel: Sequence[int], a: dict[str, Any], indices: bool) -> Any:
    x = np.asarray(x)
    if not indices:
        return copy_out(_reduced_windows(x, kernel, a, np.maximum, _lowest(x.dtype))[0])
    xp, out, begin, _ = _pad_for(x, kernel, a, _lowest(x.dtype))
    y = tap = None
    for i, (_, view) in enumerate(_windows(xp, kernel, a, out)):
        if y is None:
            y = view.copy()
            tap = np.zeros(y.shape, dtype=np.int64)
            continue
        better = view > y
        tap[better] = i
        np.maximum(y, view, out=y)
    return y, _flat_indices(tap, x.shape, kernel, begin, a)


def _flat_indices(
    tap: np.ndarray, shape: Sequence[int], kernel: Sequence[int], begin: Sequence[int],
    a: dict[str, Any],
) -> np.ndarray:  # fmt: skip
    """Flat input index of each max from the kernel tap that won (row or column major)."""
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    taps = np.unravel_index(tap, kernel) if nd else ()
    spatial = shape[2:]
    order = range(nd) if not a.get("storage_order") else range(nd - 1, -1, -1)
    flat = np.zeros(tap.shape, dtype=np.int64)
    for i in order:
        grid = np.arange(tap.shape[2 + i], dtype=np.int64) * strides[i] - begin[i]
        coord = taps[i] * dil[i] + grid.reshape((-1,) + (1,) * (nd - 1 - i))
        flat = flat * spatial[i] + coord
    nc = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[0], shape[1])
    return flat + nc.reshape(nc.shape + (1,) * nd) * math.prod(spatial)


def _kernel(info: NodeInfo) -> Sequence[int]:
    return tuple(info.attrs["kernel_shape"])


@kernels.register("MaxPool", versions=(1,), dtypes=FLOATS, factory=True, check=_check)
@factory(**_POOL_DEFAULTS)
def max_pool_1(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], Any]:
    """MaxPool without the Indices output."""
    kernel = _kernel(info)
    return lambda X: _max_pool(X, kernel, attrs, False)


@kernels.register(
    "MaxPool",
    versions=(8, 10, 11, 12, 22),
    dtypes=(*FLOATS, "int8", "uint8"),
    factory=True,
    check=_check,
)
@factory(**_POOL_DEFAULTS, storage_order=0)
def max_pool(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], Any]:
    """MaxPool; the Indices output is computed only when the node asks for it."""
    kernel = _kernel(info)
    outputs = info.node.outputs
    if len(outputs) > 1 and outputs[1]:
        return lambda X: _max_pool(X, kernel, attrs, True)
    return lambda X: (_max_pool(X, kernel, attrs, False),)


def _tap_counts(
    shape: Sequence[int], kernel: Sequence[int], a: dict[str, Any], out: Sequence[int],
    begin: Sequence[int], end: Sequence[int], include_pad: bool,
) -> np.ndarray:  # fmt: skip
    """How many taps of each window fall inside the counted region (outer product per axis)."""
    nd = len(kernel)
    strides = a["strides"] or (1,) * nd
    dil = a["dilations"] or (1,) * nd
    counts = np.ones((), dtype=np.int64)
    for i in range(nd):
        lo, hi = (-begin[i], shape[i] + end[i]) if include_pad else (0, shape[i])
        start = np.arange(out[i]) * strides[i] - begin[i]
        taps = start[:, None] + np.arange(kernel[i]) * dil[i]
        axis_counts = ((taps >= lo) & (taps < hi)).sum(axis=1)
        counts = np.multiply.outer(counts, axis_counts)
    return counts


def _sum_pool(x: np.ndarray, kernel: Sequence[int], a: dict[str, Any]) -> Any:
    return _reduced_windows(x, kernel, a, np.add, 0)


def _average_pool(x: Any, kernel: Sequence[int], a: dict[str, Any], cache: dict[Any, Any]) -> Any:
    x = np.asarray(x)
    y, out, begin, end = _sum_pool(x, kernel, a)
    key = (x.shape[2:], x.dtype)
    divisor = cache.get(key)  # the divisors depend on the input's spatial shape only
    if divisor is None:
        counts = _tap_counts(x.shape[2:], kernel, a, out, begin, end, bool(a["count_include_pad"]))
        divisor = counts.astype(x.dtype)
        if len(cache) > 8:
            cache.clear()
        cache[key] = divisor
    with np.errstate(all="ignore"):
        return np.divide(y, divisor, out=fresh(y.shape, y.dtype))


@kernels.register(
    "AveragePool",
    versions=(1, 7, 10, 11, 19, 22),
    dtypes=FLOATS,
    factory=True,
    check=_check,
)
@factory(**_POOL_DEFAULTS, count_include_pad=0)
def average_pool(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], Any]:
    """Average over each window (pads counted when ``count_include_pad``)."""
    kernel = _kernel(info)
    cache: dict[Any, Any] = {}
    return lambda X: _average_pool(X, kernel, attrs, cache)


@kernels.register("LpPool", versions=(2, 11, 18, 22), dtypes=FLOATS, factory=True, check=_check)
@factory(**_POOL_DEFAULTS, p=2)
def lp_pool(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], Any]:
    """(sum |x|^p)^(1/p) over each window (pads add 0)."""
    kernel, p = _kernel(info), attrs["p"]

    def run(X: Any) -> Any:
        x = np.abs(np.asarray(X)) ** p
        return _sum_pool(x, kernel, attrs)[0] ** (1.0 / p)

    return run


def _spatial(x: Any) -> tuple[int, ...]:
    return tuple(range(2, np.ndim(x)))


@kernels.register("GlobalAveragePool", versions=(1, 22), dtypes=FLOATS)
def global_average_pool(X: Any) -> Any:
    """Mean over all spatial dims, kept as size 1."""
    return np.mean(X, axis=_spatial(X), keepdims=True)


@kernels.register("GlobalMaxPool", versions=(1, 22), dtypes=FLOATS)
def global_max_pool(X: Any) -> Any:
    """Max over all spatial dims, kept as size 1."""
    return np.max(X, axis=_spatial(X), keepdims=True)


@kernels.register("GlobalLpPool", versions=(2, 22), dtypes=FLOATS)
def global_lp_pool(X: Any, *, p: int = 2) -> Any:
    """(sum |x|^p)^(1/p) over all spatial dims, kept as size 1."""
    s = np.sum(np.abs(X) ** p, axis=_spatial(X), keepdims=True)
    return s ** (1.0 / p)


def _unpooled_shape(
    shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int]
) -> list[int]:
    """The output shape MaxUnpool infers: MaxPool's output size formula, inverted."""
    nd = len(kernel)
    spatial = [
        (shape[2 + i] - 1) * strides[i] - (pads[i] + pads[i + nd]) + kernel[i] for i in range(nd)
    ]
    return [*shape[:2], *spatial]


def _unpool_target(
    x: np.ndarray, index: np.ndarray, output_shape: Any, kernel: Sequence[int],
    strides: Sequence[int] | None, pads: Sequence[int] | None,
) -> list[int]:  # fmt: skip
    """The output shape: ``output_shape`` when given (no smaller than the inferred one),
    else the inferred one; ValueError on inputs onnxruntime refuses."""
    nd = x.ndim - 2
    if nd < 1 or len(kernel) != nd:
        raise ValueError(f"MaxUnpool: X is {x.ndim}-D with a {len(kernel)}-D kernel_shape")
    if index.shape != x.shape:
        raise ValueError(f"MaxUnpool: indices are {index.shape}, X is {x.shape}")
    inferred = _unpooled_shape(x.shape, kernel, strides or (1,) * nd, pads or (0,) * (2 * nd))
    if min(inferred[2:]) < 1:
        raise ValueError(f"MaxUnpool: the inferred output shape {inferred} is not positive")
    if output_shape is None:
        return inferred
    shape = [int(v) for v in np.asarray(output_shape).reshape(-1)]
    if len(shape) != x.ndim or math.prod(shape) < math.prod(inferred):
        raise ValueError(f"MaxUnpool: output_shape {shape} is smaller than {inferred}")
    return shape


@kernels.register(
    "MaxUnpool",
    versions=(9, 11, 22),
    check=input_dtypes(i0=FLOATS, i1=("int64",)),
    host_inputs=(2,),
    fresh_output=True,
)
def max_unpool(
    X: Any, I: Any, output_shape: Any = None, *, kernel_shape: Sequence[int],  # noqa: E741
    pads: Sequence[int] | None = None, strides: Sequence[int] | None = None,
) -> np.ndarray:  # fmt: skip
    """Zeros with each value of ``X`` written at its index in ``I``: flat indices into the
    whole output (as MaxPool's Indices output counts them), one numpy scatter.

    With ``output_shape`` the indices count in that shape, as in onnxruntime, so MaxPool's
    indices of an input of that shape land back where they came from. onnx's reference op
    and its ``test_maxunpool_export_with_output_shape`` case instead scatter into the
    inferred shape and pad that at the end (onnx/onnx#2398; onnxruntime excludes the case
    as invalid test data). Indices outside the output are refused (ValueError). Duplicate
    indices (MaxPool's overlapping windows, with equal values) keep the last value, as
    onnxruntime's loop does (numpy's one-dimensional assignment writes in order).
    """
    x, index = np.asarray(X), np.asarray(I)
    shape = _unpool_target(x, index, output_shape, kernel_shape, strides, pads)
    size = math.prod(shape)
    flat = index.reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= size):
        bad = flat[(flat < 0) | (flat >= size)][0]
        raise ValueError(f"MaxUnpool: index {int(bad)} is outside the output of {size} values")
    y = fresh((size,), x.dtype)
    y.fill(0)
    y[flat] = x.reshape(-1)
    return y.reshape(shape)
