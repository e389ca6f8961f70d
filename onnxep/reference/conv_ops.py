"""Conv and ConvTranspose in 1-D, 2-D and 3-D: im2col into one contiguous buffer, then one
float BLAS matmul per group; Col2Im, the overlapping add ConvTranspose ends with.

- 1x1 convolutions skip im2col (a strided subsample at most, then a matmul);
- depthwise convolutions (one input channel per group) run as one small matmul per channel
  where numpy's stacked matmul wins (1-D, stride-1 2-D), else accumulate over kernel
  positions;
- with constant weights and bias, the bias rides in the matmul: a row of ones under the
  im2col columns meets a bias column of the weights, prepared once per node (numpy adds a
  per-channel bias two to three times slower than a plain array add);
- constant 3x3 weights of an ungrouped, undilated stride-1 conv go through Winograd
  F(2x2, 3x3) (:mod:`onnxep.reference.winograd`) on the shapes where it measured faster;
- float16 runs in float32 and is rounded once at the end (onnxruntime's CPU path does too).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from onnxep.graph import NodeInfo
from onnxep.reference import winograd
from onnxep.reference._common import FLOATS, NUMERIC, attr_in, factory, fresh, scratch
from onnxep.reference._registry import kernels

__all__ = ["conv_geometry", "copy_out", "padded"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def conv_geometry(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[list[int], list[int], list[int]]:
    """Output spatial shape and begin/end pads of a convolution (ONNX Conv rules)."""
    nd = len(in_shape)
    begin, end, out = [], [], []
    for i in range(nd):
        extent = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_shape[i] // strides[i])
            total = max((o - 1) * strides[i] + extent - in_shape[i], 0)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        elif auto_pad == "VALID":
            b = e = 0
        else:
            b, e = (pads[i], pads[i + nd]) if pads else (0, 0)
        begin.append(b)
        end.append(e)
        out.append((in_shape[i] + b + e - extent) // strides[i] + 1)
    return out, begin, end


def padded(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: Any = 0) -> np.ndarray:
    """``x`` with spatial dims (2...) padded by ``value``; ``x`` itself when nothing to pad.

    Negative pads crop. The result is a scratch array (slot 0): read it, never return it.
    Only the border is filled: the inside is written once, by the copy of ``x``.
    """
    if not any(begin) and not any(end):
        return x
    crop = tuple(slice(max(-b, 0), n - max(-e, 0)) for b, e, n in zip(begin, end, x.shape[2:]))
    x = x[(slice(None), slice(None), *crop)]
    begin = [max(b, 0) for b in begin]
    shape = [n + b + max(e, 0) for n, b, e in zip(x.shape[2:], begin, end)]
    out = scratch(0, (*x.shape[:2], *shape), x.dtype)
    for axis, (b, n) in enumerate(zip(begin, x.shape[2:]), start=2):
        index: list[slice] = [slice(None)] * out.ndim
        for border in (slice(0, b), slice(b + n, None)):
            index[axis] = border
            out[tuple(index)] = value
    out[(slice(None), slice(None), *(slice(b, b + n) for b, n in zip(begin, x.shape[2:])))] = x
    return out


def copy_out(view: np.ndarray) -> np.ndarray:
    """A contiguous output copy of ``view``."""
    out = fresh(view.shape, view.dtype)
    np.copyto(out, view)
    return out


def _patches(
    xp: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """Patches of ``xp`` (N, C, *S) as a strided (N, C, *kernel, *out) view."""
    nd = len(kernel)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    view = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + nd)))
    steps = [slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out)]
    view = view[(slice(None), slice(None), *steps, *(slice(None, None, d) for d in dil))]
    perm = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    return view.transpose(perm)


def _patches_2d_stride1(
    x: np.ndarray, kernel: Sequence[int], dil: Sequence[int], begin: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:  # fmt: skip
    """Patches of a stride-1 2-D conv as a (N, C, kh, kw, Ho*Wo) view, gathered by
    :func:`_columns` without short copies.

    The padded input is written once per kernel column, shifted left by that column and
    cropped to the output width: (kw, N, C, Hp, Wo). In it, the patch rows of one kernel
    position are a contiguous block of Ho*Wo values, so the columns are gathered in runs of
    Ho*Wo rather than runs of Wo (measured 10-30% faster per conv than the strided gather).
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    (top, left), (ho, wo) = begin, out
    hp = ho + (kh - 1) * dil[0]
    shifted = scratch(0, (kw, n, c, hp, wo), x.dtype)
    shifted[:, :, :, :top] = 0
    shifted[:, :, :, top + h :] = 0
    body = shifted[:, :, :, top : top + h]
    for j in range(kw):
        start = j * dil[1] - left  # input column read by output column 0
        lo, hi = max(0, -start), max(0, min(wo, w - start))
        body[j, :, :, :, :lo] = 0
        body[j, :, :, :, hi:] = 0
        if hi > lo:
            body[j, :, :, :, lo:hi] = x[:, :, :, lo + start : hi + start]
    size = shifted.itemsize
    plane = hp * wo * size
    return np.lib.stride_tricks.as_strided(
        shifted,
        (n, c, kh, kw, ho * wo),
        (c * plane, plane, dil[0] * wo * size, n * c * plane, size),
        writeable=False,
    )


def _split(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``array`` reshaped without a copy (splitting axes never needs one)."""
    view = array.view()
    view.shape = tuple(shape)
    return view


def _columns(patches: np.ndarray, taps: int, group: int, ones: bool) -> np.ndarray:
    """The im2col matrix (N, group, C/group * taps [+ 1], L) of a (N, C, *kernel, *out)
    patch view (``taps`` = prod(kernel)), in a scratch array. With ``ones``, each group's
    last row is 1, for weights that carry the bias as their last column."""
    n, c, *rest = patches.shape
    cg = c // group
    rows, length = cg * taps, math.prod(rest) // taps
    cols = scratch(1, (n, group, rows + ones, length), patches.dtype)
    target = _split(cols[:, :, :rows], (n, group, cg, *rest))
    np.copyto(target, _split(patches, (n, group, cg, *rest)))
    if ones:
        cols[:, :, rows] = 1
    return cols


def _depthwise_rows(
    x: np.ndarray, w: np.ndarray, dil: Sequence[int], begin: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """Stride-1 2-D depthwise conv without the im2col copy: in the column-shifted input of
    :func:`_patches_2d_stride1`, the kw patch rows of one kernel row are evenly spaced, so
    each channel's (1, kw) @ (kw, Ho*Wo) product reads them where they are (one stacked
    matmul per kernel row, summed)."""
    n, c = x.shape[:2]
    patches = _patches_2d_stride1(x, w.shape[2:], dil, begin, out)  # (N, C, kh, kw, L)
    length = math.prod(out)
    y = fresh((n, c, 1, length), x.dtype)
    tmp = scratch(1, y.shape, x.dtype)
    for row in range(w.shape[2]):
        np.matmul(w[:, :, row], patches[:, :, row], out=tmp if row else y)
        if row:
            y += tmp
    return y.reshape(n, c, *out)


def _depthwise(
    xp: np.ndarray, w: np.ndarray, strides: Sequence[int], dil: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """One input channel per output channel: accumulate kernel positions elementwise.

    Stride 1 runs on flattened planes, other strides on strided views.
    """
    if all(s == 1 for s in strides):
        return _depthwise_flat(xp, w, dil, out)
    n, c = xp.shape[:2]
    nd = len(out)
    y = fresh((n, c, *out), xp.dtype)
    y.fill(0)
    tmp = scratch(1, y.shape, y.dtype)
    for pos in np.ndindex(*w.shape[2:]):
        taps = [
            slice(p * d, p * d + s * (o - 1) + 1, s) for p, d, s, o in zip(pos, dil, strides, out)
        ]
        scale = w[(slice(None), 0, *pos)].reshape((1, c) + (1,) * nd)
        np.multiply(xp[(slice(None), slice(None), *taps)], scale, out=tmp)
        y += tmp
    return y


def _depthwise_channels_last(
    x: np.ndarray, w: np.ndarray, begin: Sequence[int], end: Sequence[int],
    strides: Sequence[int], dil: Sequence[int], out: Sequence[int],
) -> np.ndarray:  # fmt: skip
    """Depthwise conv for many channels on small planes: padded straight into a
    channels-last copy, so every kernel position is one operation whose inner loop runs
    over the channels."""
    n, c = x.shape[:2]
    inner = [slice(max(-b, 0), size - max(-e, 0)) for b, e, size in zip(begin, end, x.shape[2:])]
    x = x[(slice(None), slice(None), *inner)]  # negative pads crop
    lo = [max(b, 0) for b in begin]
    shape = [size + b + max(e, 0) for size, b, e in zip(x.shape[2:], lo, end)]
    src = scratch(2, (n, *shape, c), x.dtype)
    src.fill(0)
    src[(slice(None), *(slice(b, b + size) for b, size in zip(lo, x.shape[2:])))] = np.moveaxis(
        x, 1, -1
    )
    weights = np.ascontiguousarray(np.moveaxis(w[:, 0], 0, -1))  # (*kernel, C)
    if all(st == 1 for st in strides):  # shifted slices of the flattened planes
        return _depthwise_cl_flat(src, weights, dil, out)
    acc = scratch(3, (n, *out, c), x.dtype)
    acc.fill(0)
    tmp = scratch(1, acc.shape, x.dtype)
    for pos in np.ndindex(*w.shape[2:]):
        taps = [
            slice(p * d, p * d + s * (o - 1) + 1, s) for p, d, s, o in zip(pos, dil, strides, out)
        ]
        np.multiply(src[(slice(None), *taps)], weights[pos], out=tmp)
        acc += tmp
    return copy_out(np.moveaxis(acc, -1, 1))


def _depthwise_cl_flat(
    src: np.ndarray, weights: np.ndarray, dil: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """Stride-1 channels-last depthwise conv: each kernel position reads one contiguous
    (positions x channels) block of the flattened padded planes."""
    n, c = src.shape[0], src.shape[-1]
    spatial = src.shape[1:-1]
    pitch = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    length = sum((o - 1) * p for o, p in zip(out, pitch)) + 1
    flat = src.reshape(n, -1, c)
    acc = scratch(3, (n, math.prod(spatial), c), src.dtype)
    head = acc[:, :length]
    head.fill(0)
    tmp = scratch(1, head.shape, src.dtype)
    for pos in np.ndindex(*weights.shape[:-1]):
        offset = sum(p * d * q for p, d, q in zip(pos, dil, pitch))
        np.multiply(flat[:, offset : offset + length], weights[pos], out=tmp)
        head += tmp
    grid = acc.reshape(n, *spatial, c)[(slice(None), *(slice(0, o) for o in out))]
    return copy_out(np.moveaxis(grid, -1, 1))


def _depthwise_flat(
    xp: np.ndarray, w: np.ndarray, dil: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """Stride-1 depthwise conv on the flattened padded planes: each kernel position is one
    contiguous shifted slice, so numpy runs long inner loops; the padding columns computed
    along the way are cropped at the end."""
    n, c = xp.shape[:2]
    spatial = xp.shape[2:]
    pitch = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    length = sum((o - 1) * p for o, p in zip(out, pitch)) + 1
    flat = xp.reshape(n, c, -1)
    acc = scratch(3, (n, c, math.prod(spatial)), xp.dtype)
    acc.fill(0)
    head = acc[:, :, :length]
    tmp = scratch(1, head.shape, xp.dtype)
    for pos in np.ndindex(*w.shape[2:]):
        offset = sum(p * d * q for p, d, q in zip(pos, dil, pitch))
        np.multiply(
            flat[:, :, offset : offset + length], w[(slice(None), 0, *pos)][:, None], out=tmp
        )
        head += tmp
    grid = acc.reshape(n, c, *spatial)
    return copy_out(grid[(slice(None), slice(None), *(slice(0, o) for o in out))])


def _depthwise_by_matmul(nd: int, strides: Sequence[int], out: Sequence[int]) -> bool:
    """Whether a depthwise conv runs faster as im2col and one small matmul per channel
    (numpy's stacked matmul) than by accumulating kernel positions elementwise.

    Measured: 1-D convs 2-4x faster (kernel 3 to 31), 2-D stride-1 convs 1.2-2x (MobileNet
    and ShuffleNet shapes, 7x7 to 112x112 planes), strided 2-D convs only on planes of 28
    and more; 3-D stride-1 convs 2-3x slower (their im2col copies short runs).
    """
    if nd == 1:
        return True
    return nd == 2 and (max(strides) == 1 or out[-1] >= 28)


def _shifted_pays(
    group: int, m: int, c: int, kernel: Sequence[int], strides: Sequence[int], out: Sequence[int]
) -> bool:
    """Whether _conv_shifted beats im2col: few outputs from many inputs on a large plane
    (measured: DenseNet's 128 -> 32 channel 3x3 convs on 56x56 run about 20% faster)."""
    return (
        group == 1 and m <= 32 and c >= 2 * m and math.prod(out) >= 1024
        and all(s == 1 for s in strides) and math.prod(kernel) > 1
    )  # fmt: skip


def _conv_shifted(
    xp: np.ndarray, w: np.ndarray, dil: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """Stride-1 conv as one matmul per kernel position, without im2col.

    On the flattened padded planes the input each kernel position reads is a contiguous
    shifted slice, which BLAS takes as it is (row stride = plane size); the products are
    accumulated over a slightly wider output (the padding columns), cropped at the end.
    For few output channels this beats copying the nine times larger im2col buffer.
    """
    n, c = xp.shape[:2]
    m = w.shape[0]
    spatial = xp.shape[2:]
    pitch = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    length = sum((o - 1) * p for o, p in zip(out, pitch)) + 1
    flat = xp.reshape(n, c, -1)
    taps = np.ascontiguousarray(np.moveaxis(w.reshape(m, c, -1), 2, 0))  # (K, M, C)
    acc = scratch(3, (n, m, math.prod(spatial)), xp.dtype)
    head = acc[:, :, :length]
    tmp = scratch(1, head.shape, xp.dtype)
    for k, pos in enumerate(np.ndindex(*w.shape[2:])):
        offset = sum(p * d * q for p, d, q in zip(pos, dil, pitch))
        np.matmul(taps[k], flat[:, :, offset : offset + length], out=head if k == 0 else tmp)
        if k:
            head += tmp
    grid = acc.reshape(n, m, *spatial)
    return copy_out(grid[(slice(None), slice(None), *(slice(0, o) for o in out))])


def _conv_float(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, group: int,
    strides: Sequence[int], dil: Sequence[int], begin: Sequence[int], end: Sequence[int],
    out: Sequence[int], wb: np.ndarray | None = None, wu: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The convolution in x's float dtype. ``wb``, when given, is ``w`` as (group, M/group,
    C/group * K + 1) with ``b`` as its last column: the im2col paths then add the bias in
    the matrix product, through a row of ones, instead of a pass over the output. ``wu``,
    given for an undilated stride-1 3x3 conv without groups, is ``w`` transformed for
    :mod:`winograd`, used where that pays."""
    n, c = x.shape[:2]
    if wu is not None and min(*begin, *end) >= 0 and winograd.pays(c, w.shape[0], out):
        return winograd.conv3x3(x, wu, b, begin, out)
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd, taps = len(kernel), math.prod(kernel)
    depthwise = cg == 1 and m == c == group and nd > 0
    large = math.prod(out) >= 2500  # measured: _depthwise_rows 1.5-2x faster from 56x56 on,
    # as fast up to 40x40 (where it would add the bias in a pass of its own)
    accumulate = depthwise and not _depthwise_by_matmul(nd, strides, out)
    if depthwise and nd == 2 and max(strides) == 1 and min(*begin, *end) >= 0 and large:
        y = _depthwise_rows(x, w, dil, begin, out)
    elif accumulate and c >= 4 * out[-1]:
        y = _depthwise_channels_last(x, w, begin, end, strides, dil, out)
    elif accumulate:
        y = _depthwise(padded(x, begin, end), w, strides, dil, out)
    elif _shifted_pays(group, m, c, kernel, strides, out):
        y = _conv_shifted(padded(x, begin, end), w, dil, out)
    else:
        if nd == 2 and max(strides) == 1 and min(*begin, *end) >= 0 and taps > 1:
            patches = _patches_2d_stride1(x, kernel, dil, begin, out)
        elif taps == 1:
            window = tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(strides, out))
            patches = padded(x, begin, end)[(slice(None), slice(None), *window)]
        else:
            patches = _patches(padded(x, begin, end), kernel, strides, dil, out)
        length = math.prod(out)
        # A 1x1 conv reads x as it is; copying it beside a row of ones costs less than the
        # bias pass when there are fewer input than output channels (x is smaller than y).
        copy_anyway = taps > 1 or not patches.flags.c_contiguous
        fold_bias = wb is not None and (copy_anyway or c < m)
        if copy_anyway or fold_bias:
            cols = _columns(patches, taps, group, fold_bias)
        else:
            cols = patches.reshape(n, group, cg, length)
        y = fresh((n, group, m // group, length), cols.dtype)
        np.matmul(wb if fold_bias else w.reshape(group, m // group, cg * taps), cols, out=y)
        y = y.reshape(n, m, *out)
        if fold_bias:
            return y
    if b is not None:  # per channel over 3 dims: numpy's broadcast is faster than over 2 + nd
        rows = y.reshape(n, m, math.prod(out)) if y.flags.c_contiguous else y.reshape(n, m, *out)
        rows += b.reshape((1, m) + (1,) * (rows.ndim - 2))
    return y


def with_bias_column(w: np.ndarray, b: np.ndarray, group: int) -> np.ndarray:
    """Conv weights (M, C/group, *K) and bias (M,) as one (group, M/group, C/group*K + 1)
    matrix whose last column is the bias (see :func:`_conv_float`)."""
    m = w.shape[0]
    wm = w.reshape(group, m // group, -1)
    return np.ascontiguousarray(np.concatenate([wm, b.reshape(group, m // group, 1)], axis=2))


def _float_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def conv(
    X: Any,
    W: Any,
    B: Any = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> Any:
    """N-D convolution (cross-correlation) with groups, dilations, strides and pads."""
    return _convolve(X, W, B, auto_pad, dilations, group, pads, strides)


def _convolve(
    X: Any, W: Any, B: Any, auto_pad: str, dilations: Sequence[int] | None, group: int,
    pads: Sequence[int] | None, strides: Sequence[int] | None,
    with_bias: Callable[[np.dtype], np.ndarray] | None = None,
    with_winograd: Callable[[np.dtype], np.ndarray] | None = None,
) -> Any:  # fmt: skip
    X, W = np.asarray(X), np.asarray(W)
    nd = X.ndim - 2
    strides = strides or (1,) * nd
    dilations = dilations or (1,) * nd
    out, begin, end = conv_geometry(X.shape[2:], W.shape[2:], strides, dilations, pads, auto_pad)
    dtype = _float_dtype(X)
    y = _conv_float(
        X.astype(dtype, copy=False), W.astype(dtype, copy=False),
        None if B is None else np.asarray(B).astype(dtype, copy=False),
        group, strides, dilations, begin, end, out,
        None if with_bias is None else with_bias(dtype),
        None if with_winograd is None else with_winograd(dtype),
    )  # fmt: skip
    return y.astype(X.dtype, copy=False)


@kernels.register(
    "Conv",
    versions=(1, 11, 22),
    dtypes=FLOATS,
    check=attr_in("auto_pad", _AUTO_PADS, "NOTSET"),
    fresh_output=True,
    factory=True,
)
@factory(auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None)
def conv_kernel(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """:func:`conv`; constant weights and bias are joined once into one matrix, so that the
    bias is added by the matrix product (see :func:`_conv_float`)."""
    weights, bias = info.constant(1), info.constant(2)
    group = attrs["group"]

    @functools.cache  # once per dtype
    def with_bias(dtype: np.dtype) -> np.ndarray:
        return with_bias_column(weights.astype(dtype), bias.astype(dtype), group)

    constant = weights is not None and bias is not None
    geometry = (attrs["auto_pad"], attrs["dilations"], group, attrs["pads"], attrs["strides"])
    winograd_ready = _winograd_filters(weights, attrs)

    def run(X: Any, W: Any, B: Any = None) -> Any:
        return _convolve(X, W, B, *geometry, with_bias if constant else None, winograd_ready)

    return run


def _winograd_filters(
    weights: np.ndarray | None, attrs: dict[str, Any]
) -> Callable[[np.dtype], np.ndarray] | None:
    """Constant 3x3 weights of an ungrouped, undilated stride-1 conv, transformed once per
    dtype for :mod:`winograd` (None for any other conv)."""
    if weights is None or weights.shape[2:] != (3, 3) or attrs["group"] != 1:
        return None
    if any(s != 1 for s in attrs["strides"] or ()) or any(d != 1 for d in attrs["dilations"] or ()):
        return None

    @functools.cache  # once per dtype
    def filters(dtype: np.dtype) -> np.ndarray:
        return winograd.transformed_filters(weights.astype(dtype))

    return filters


def _transpose_geometry(
    in_shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
    dil: Sequence[int], output_padding: Sequence[int], output_shape: Sequence[int] | None,
    pads: Sequence[int] | None, auto_pad: str,
) -> tuple[list[int], list[int]]:  # fmt: skip
    """Output spatial shape and begin pads of a ConvTranspose (ONNX ConvTranspose rules)."""
    nd = len(in_shape)
    out, begin = [], []
    for i in range(nd):
        full = strides[i] * (in_shape[i] - 1) + output_padding[i] + (kernel[i] - 1) * dil[i] + 1
        if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = output_shape[-nd + i] if output_shape is not None else in_shape[i] * strides[i]
            total = full - o
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif auto_pad == "VALID" or not pads:
            b, o = 0, full
        else:
            b, o = pads[i], full - pads[i] - pads[i + nd]
        out.append(o)
        begin.append(b)
    return out, begin


@kernels.register(
    "ConvTranspose",
    versions=(1, 11, 22),
    dtypes=FLOATS,
    check=attr_in("auto_pad", _AUTO_PADS, "NOTSET"),
    fresh_output=True,
)
def conv_transpose(
    X: Any,
    W: Any,
    B: Any = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> Any:
    """N-D transposed convolution: one matmul per group, then col2im by kernel position."""
    X, W = np.asarray(X), np.asarray(W)
    dtype = _float_dtype(X)
    x, w = X.astype(dtype, copy=False), W.astype(dtype, copy=False)
    n, c = x.shape[:2]
    kernel, in_shape = w.shape[2:], x.shape[2:]
    nd = len(kernel)
    strides, dilations = strides or (1,) * nd, dilations or (1,) * nd
    out, begin = _transpose_geometry(
        in_shape, kernel, strides, dilations, output_padding or (0,) * nd,
        output_shape, pads, auto_pad,
    )  # fmt: skip
    mg = w.shape[1]
    wt = w.reshape(group, c // group, mg * math.prod(kernel)).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, group, c // group, math.prod(in_shape)))
    cols = cols.reshape(n, group * mg, *kernel, *in_shape)
    y = np.zeros((n, group * mg, *out), dtype=dtype)
    for pos in np.ndindex(*kernel):
        _scatter_add(y, cols[(slice(None), slice(None), *pos)], pos, begin, strides, dilations)
    if B is not None:
        y += np.asarray(B).astype(dtype, copy=False).reshape((1, -1) + (1,) * nd)
    return y.astype(X.dtype, copy=False)


def _scatter_add(
    y: np.ndarray, src: np.ndarray, pos: Sequence[int], begin: Sequence[int],
    strides: Sequence[int], dil: Sequence[int],
) -> None:  # fmt: skip
    """y[..., p*d + s*i - begin] += src[..., i] for the i that land inside y."""
    dst_index, src_index = [slice(None), slice(None)], [slice(None), slice(None)]
    for p, b, s, d, size, n in zip(pos, begin, strides, dil, y.shape[2:], src.shape[2:]):
        offset = p * d - b  # output coordinate of input index 0
        first = max(0, -(offset // s))  # smallest i with offset + s*i >= 0
        last = min(n - 1, (size - 1 - offset) // s) if size - 1 - offset >= 0 else -1
        if last < first:
            return
        src_index.append(slice(first, last + 1))
        dst_index.append(slice(offset + s * first, offset + s * last + 1, s))
    y[tuple(dst_index)] += src[tuple(src_index)]


def _col2im_geometry(
    x: np.ndarray, image: Sequence[int], block: Sequence[int], strides: Sequence[int],
    dil: Sequence[int], pads: Sequence[int],
) -> list[int]:  # fmt: skip
    """The blocks along each axis; ValueError when ``x`` does not hold exactly them."""
    nd = len(image)
    if x.ndim != 3 or len(block) != nd or min((*image, *block), default=1) < 1:
        raise ValueError(f"Col2Im: input {x.shape}, image {list(image)}, block {list(block)}")
    blocks = [
        (image[i] + pads[i] + pads[i + nd] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1
        for i in range(nd)
    ]
    taps = math.prod(block)
    if x.shape[1] % taps or x.shape[2] != math.prod(blocks) or min(blocks, default=1) < 1:
        raise ValueError(
            f"Col2Im: input {x.shape} is not (N, C * {taps}, {math.prod(blocks)}) for "
            f"{blocks} blocks of {list(block)}"
        )
    return blocks


@kernels.register("Col2Im", versions=(18,), dtypes=NUMERIC, host_inputs=(1, 2), fresh_output=True)
def col2im(
    X: Any, image_shape: Any, block_shape: Any, *, dilations: Sequence[int] | None = None,
    pads: Sequence[int] | None = None, strides: Sequence[int] | None = None,
) -> np.ndarray:  # fmt: skip
    """N-D Col2Im: every block's column added into the (N, C, *image_shape) image, one
    strided add per kernel position (as ConvTranspose). float16 is summed in float32,
    integers wrap.

    onnxruntime (float only) agrees in 2-D, and in other ranks without dilations: its N-D
    path takes the dilated kernel extent for the kernel shape and so reads the wrong column
    rows when a dilation is not 1. onnx's op and the definition are followed there.
    """
    x = np.asarray(X)
    image = [int(v) for v in np.asarray(image_shape).reshape(-1)]
    block = [int(v) for v in np.asarray(block_shape).reshape(-1)]
    nd = len(image)
    strides, dilations = strides or (1,) * nd, dilations or (1,) * nd
    pads = pads or (0,) * (2 * nd)
    blocks = _col2im_geometry(x, image, block, strides, dilations, pads)
    dtype = _float_dtype(x)
    channels = x.shape[1] // math.prod(block)
    cols = x.astype(dtype, copy=False).reshape(x.shape[0], channels, *block, *blocks)
    y = fresh((*cols.shape[:2], *image), dtype)
    y.fill(0)
    for pos in np.ndindex(*block):
        _scatter_add(y, cols[(slice(None), slice(None), *pos)], pos, pads[:nd], strides, dilations)
    return y.astype(x.dtype, copy=False)
