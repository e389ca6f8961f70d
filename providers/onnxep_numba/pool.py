"""MaxPool, AveragePool (1-D and 2-D; pads, auto_pad, strides, dilations, ceil_mode,
count_include_pad) and GlobalAveragePool / GlobalMaxPool, as ``prange`` loops over planes.

Windows are clipped as onnxruntime clips them: padded cells count for AveragePool with
``count_include_pad=1`` only inside the declared pads, never beyond them (ceil_mode tails).
"""

from __future__ import annotations

import numba
import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._conv_kernels import copy_phased, phased_shape, tap_offsets
from onnxep_numba._jit import jit
from onnxep_numba._registry import FLOATS, all_checks, check_static_rank, kernels, only_outputs
from onnxep_numba.conv import conv_geometry

__all__ = ["average_pool", "global_average_pool", "global_max_pool", "max_pool"]


@jit(parallel=False)
def _taps_inside(n_out, size, k, stride, dil, begin, end, include_pad):
    """Per output index along one axis: how many window taps count towards its average
    (inside the input, or inside input and explicit pads: onnxruntime's clipping)."""
    counts = np.zeros(n_out, np.float64)
    for o in range(n_out):
        for t in range(k):
            i = o * stride - begin + t * dil
            if (-begin <= i < size + end) if include_pad else (0 <= i < size):
                counts[o] += 1
    return counts


@jit(parallel=False)
def _max_into(acc, src, n, off):
    """acc[i] = max(acc[i], src[off + i]) for i < n; a NaN wins, as in onnxruntime."""
    for i in range(n):
        v = src[numba.uint64(off + i)]
        a = acc[numba.uint64(i)]
        m = v if v > a else a
        acc[numba.uint64(i)] = v if v != v else m


@jit(parallel=False)
def _add_into(acc, src, n, off):
    """acc[i] += src[off + i] for i < n."""
    for i in range(n):
        acc[numba.uint64(i)] += src[numba.uint64(off + i)]


@jit
def _pool2d(x, y, is_max, counts, geo, proto, chunks):
    """Each plane is copied once into a padded, phased plane (pads hold -inf for max, 0 for
    sums; see :func:`~onnxep_numba._conv_kernels.copy_phased`), so each window tap is one long
    loop over the flattened output grid whatever the strides (the padding columns computed
    along the way are dropped). Planes are split into ``chunks`` tasks that reuse their
    buffers."""
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    sh, sw, ph, pw = geo[3], geo[4], geo[7], geo[8]
    hq, wq = phased_shape(h, w, oh, ow, geo)
    span = (oh - 1) * wq + ow
    offsets = tap_offsets(geo, hq, wq)
    per_chunk = (planes + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        padded = np.empty(sh * sw * hq * wq, x.dtype)
        padded[:] = -np.inf if is_max else 0.0  # the borders; the interior is overwritten
        acc = np.empty(span, proto.dtype)  # the input's dtype for max, float64 for sums
        for p in range(chunk * per_chunk, min(planes, (chunk + 1) * per_chunk)):
            copy_phased(padded, x[p], sh, sw, hq, wq, ph, pw)
            acc[:] = -np.inf if is_max else 0.0
            for k in range(offsets.shape[0]):
                if is_max:
                    _max_into(acc, padded, span, offsets[k])
                else:
                    _add_into(acc, padded, span, offsets[k])
            for oy in range(oh):
                yr = y[p, oy]
                for ox in range(ow):
                    v = acc[numba.uint64(oy * wq + ox)]
                    if not is_max:
                        count = counts[oy, ox]
                        v = v / count if count else np.nan
                    yr[numba.uint64(ox)] = v


def _pool(x: np.ndarray, is_max: bool, include_pad: bool, attrs: dict) -> np.ndarray:
    one_d = x.ndim == 3
    kernel_shape = tuple(attrs["kernel_shape"])
    pads, strides, dilations = attrs["pads"], attrs["strides"], attrs["dilations"]
    if one_d:
        x = x[:, :, None, :]
        kernel_shape = (1, *kernel_shape)
        pads = (0, pads[0], 0, pads[1]) if pads else ()
        strides, dilations = (1, *strides) if strides else (), (1, *dilations) if dilations else ()
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    (ph, pw), (sh, sw), (dh, dw), (oh, ow) = conv_geometry(
        (h, w), kernel_shape, attrs["auto_pad"], dilations, pads, strides
    )
    p = tuple(pads) or (0, 0, 0, 0)
    eh, ew = (p[2], p[3]) if attrs["auto_pad"] in ("NOTSET", "") else (ph, pw)
    if attrs["ceil_mode"] and attrs["auto_pad"] in ("NOTSET", ""):
        oh, ow = (
            _ceil_out(h, kernel_shape[0], sh, dh, ph, eh),
            _ceil_out(w, kernel_shape[1], sw, dw, pw, ew),
        )
    y = np.empty((n * c, oh, ow), dtype=x.dtype)
    if y.size:
        geo = np.array([1, *kernel_shape, sh, sw, dh, dw, ph, pw], np.int64)  # conv layout
        proto = np.empty(0, x.dtype if is_max else np.float64)
        counts = np.ones((0, 0))
        if not is_max:
            k = kernel_shape
            rows = _taps_inside(oh, h, k[0], sh, dh, ph, eh, include_pad)
            counts = np.outer(rows, _taps_inside(ow, w, k[1], sw, dw, pw, ew, include_pad))
        chunks = min(n * c, 4 * numba.get_num_threads())
        _pool2d(x.reshape(n * c, h, w), y, is_max, counts, geo, proto, chunks)
    y = y.reshape(n, c, oh, ow)
    return y[:, :, 0, :] if one_d else y


def _ceil_out(size: int, k: int, s: int, d: int, begin: int, end: int) -> int:
    span = size + begin + end - (k - 1) * d - 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + begin:  # the last window would start inside the end padding
        out -= 1
    return out


def _pool_check(info: NodeInfo) -> str | None:
    if info.attrs.get("storage_order", 0):
        return "storage_order=1 is not implemented"
    return None


_POOL_CHECK = all_checks(check_static_rank(0, (3, 4)), only_outputs(1), _pool_check)


@kernels.register("MaxPool", versions=(1, 8, 10, 11, 12, 22), dtypes=FLOATS, check=_POOL_CHECK)
def max_pool(
    X: np.ndarray,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: tuple[int, ...] = (),
    kernel_shape: tuple[int, ...] = (),
    pads: tuple[int, ...] = (),
    storage_order: int = 0,
    strides: tuple[int, ...] = (),
) -> tuple[np.ndarray]:
    """ONNX MaxPool (output Y only; Indices is declined at placement)."""
    attrs = {
        "auto_pad": auto_pad,
        "ceil_mode": ceil_mode,
        "dilations": dilations,
        "kernel_shape": kernel_shape,
        "pads": pads,
        "strides": strides,
    }
    return (_pool(X, True, False, attrs),)


@kernels.register(
    "AveragePool",
    versions=(1, 7, 10, 11, 19, 22),
    dtypes=FLOATS,
    check=all_checks(check_static_rank(0, (3, 4))),
)
def average_pool(
    X: np.ndarray,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: tuple[int, ...] = (),
    kernel_shape: tuple[int, ...] = (),
    pads: tuple[int, ...] = (),
    strides: tuple[int, ...] = (),
) -> np.ndarray:
    """ONNX AveragePool."""
    attrs = {
        "auto_pad": auto_pad,
        "ceil_mode": ceil_mode,
        "dilations": dilations,
        "kernel_shape": kernel_shape,
        "pads": pads,
        "strides": strides,
    }
    return _pool(X, False, bool(count_include_pad), attrs)


@jit
def _row_reduce(x, y, is_max):
    rows, n = x.shape
    for r in numba.prange(rows):
        if is_max:
            acc = -np.inf
            for i in range(n):
                v = x[r, i]
                acc = v if (v > acc or v != v) else acc
            y[r] = acc
        else:
            total = 0.0
            for i in range(n):
                total += x[r, i]
            y[r] = total / n if n else np.nan


def _global(X: np.ndarray, is_max: bool) -> np.ndarray:
    x = np.ascontiguousarray(X)
    n, c = x.shape[:2]
    y = np.empty(n * c, dtype=x.dtype)
    if y.size:
        _row_reduce(x.reshape(n * c, -1), y, is_max)
    return y.reshape((n, c) + (1,) * (x.ndim - 2))


_GLOBAL_CHECK = check_static_rank(0, (3, 4, 5))


@kernels.register("GlobalAveragePool", versions=(1, 22), dtypes=FLOATS, check=_GLOBAL_CHECK)
def global_average_pool(X: np.ndarray) -> np.ndarray:
    """Mean over every spatial dim (float64 accumulation)."""
    return _global(X, False)


@kernels.register("GlobalMaxPool", versions=(1, 22), dtypes=FLOATS, check=_GLOBAL_CHECK)
def global_max_pool(X: np.ndarray) -> np.ndarray:
    """Max over every spatial dim (NaN propagates)."""
    return _global(X, True)
