"""DeformConv (2-D), vectorised: one bilinear sampling plan for every offset group, kernel
tap and output pixel, one gather of the (channels-last, zero-framed) input per plan corner,
then one matrix product per group, as in im2col.

onnx's reference op loops in Python over batch, output channel, input channel and output
pixel, calling GridSample each time (a (1, 64, 56, 56) input with 3x3 weights: hours).

Sampling follows onnxruntime's CPU kernel (torchvision's ``deform_conv2d`` rules):

* tap (i, j) of output pixel (oh, ow) samples at ``h = oh * stride_h - pad_top +
  i * dilation_h + offset_h`` (``w`` likewise), computed in the compute dtype;
* a point with ``h <= -1``, ``h >= H``, ``w <= -1`` or ``w >= W`` reads 0; any other reads
  its four neighbours ``floor(h) + {0, 1}`` x ``floor(w) + {0, 1}`` with the bilinear
  weights, a neighbour outside the image counting 0 (zero padding);
* the mask (default 1) scales each sample; the bias is added after the product.

Neighbours outside the image read zeros of a frame around the image. onnxruntime instead
reads pixel (0, 0) with weight 0 for them, so an inf or NaN there turns every sample with
a neighbour outside the image NaN (the right and bottom edges included); here it does not.
A NaN coordinate reads 0 (undefined in onnxruntime, which converts it to an integer).

onnx's reference op samples through GridSample with ``align_corners``, dividing the
coordinate by ``H - 1`` and ``W - 1``: on an input of height or width 1 it fails (NaN
coordinates), where onnxruntime (followed here) reads the single row or column.

float16 is computed in float32 and rounded once at the end; float32 and float64 in their
own dtype. Declined (onnx's op runs them): inputs other than 4-D (neither onnxruntime nor
onnx's op implements them), bfloat16 via ``dtypes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, factory, fresh, scratch
from onnxep.reference._registry import kernels

__all__ = ["deform_conv"]

#: attribute -> the length it has in 2-D
_LENGTHS = {"dilations": 2, "kernel_shape": 2, "pads": 4, "strides": 2}


def _check(info: NodeInfo) -> str | None:
    """Decline what is not 2-D: known input ranks or attribute lengths other than 2-D's."""
    for i, what in ((0, "X"), (1, "W"), (2, "offset")):
        shape = info.input_shape(i)
        if shape is not None and len(shape) != 4:
            return f"{what} is {len(shape)}-D; only 2-D DeformConv (4-D inputs) is implemented"
    for name, length in _LENGTHS.items():
        value = info.attrs.get(name)
        if value is not None and len(value) != length:
            return f"{name} has {len(value)} values; only 2-D DeformConv is implemented"
    return None


def _output_size(
    size: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int],
    pads: Sequence[int],
) -> tuple[int, int]:  # fmt: skip
    """(out_h, out_w) of the convolution."""
    return tuple(  # type: ignore[return-value]
        (size[a] + pads[a] + pads[a + 2] - dil[a] * (kernel[a] - 1) - 1) // strides[a] + 1
        for a in range(2)
    )


def _validate(
    x: np.ndarray, w: np.ndarray, offset: np.ndarray, b: np.ndarray | None,
    mask: np.ndarray | None, group: int, offset_group: int, out: Sequence[int],
) -> None:  # fmt: skip
    """Raise ValueError on shapes that do not fit together (onnxruntime's checks)."""
    if x.ndim != 4 or w.ndim != 4 or offset.ndim != 4:
        raise ValueError("DeformConv takes 4-D X, W and offset (2-D convolution)")
    n, c = x.shape[:2]
    m, taps = w.shape[0], w.shape[2] * w.shape[3]
    problems = [
        (group < 1 or offset_group < 1, f"group={group} and offset_group={offset_group}"),
        (c != w.shape[1] * group, f"X has {c} channels, W {w.shape[1]} per group x {group}"),
        (m % group != 0, f"{m} output channels are not divisible by group={group}"),
        (c % offset_group != 0, f"{c} channels are not divisible by offset_group"),
        (min(out) < 1, f"the output would be {tuple(out)}"),
        (
            offset.shape != (n, offset_group * taps * 2, *out),
            f"offset is {offset.shape}, expected {(n, offset_group * taps * 2, *out)}",
        ),
        (
            mask is not None and mask.shape != (n, offset_group * taps, *out),
            f"mask is {None if mask is None else mask.shape}, "
            f"expected {(n, offset_group * taps, *out)}",
        ),
        (b is not None and b.shape != (m,), f"B is {None if b is None else b.shape}, not ({m},)"),
    ]
    for bad, what in problems:
        if bad:
            raise ValueError(f"DeformConv: {what}")


def _coordinates(
    offset: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int],
    pads: Sequence[int], out: Sequence[int],
) -> list[np.ndarray]:  # fmt: skip
    """The sampling row and column of every tap: two (N, offset_group, oh, ow, kh, kw)
    arrays, base position plus offset, each computed by one broadcast add."""
    n, kh, kw, oh, ow = offset.shape[0], *kernel, *out
    groups = offset.shape[1] // (2 * kh * kw)
    pairs = offset.reshape(n, groups, kh, kw, 2, oh, ow)
    coords = []
    for axis in range(2):
        pixel_shape, tap_shape = [1, 1, 1, 1], [1, 1, 1, 1]  # (oh, ow, kh, kw)
        pixel_shape[axis], tap_shape[2 + axis] = out[axis], kernel[axis]
        pixel = (np.arange(out[axis]) * strides[axis] - pads[axis]).reshape(pixel_shape)
        tap = (np.arange(kernel[axis]) * dil[axis]).reshape(tap_shape)
        moved = pairs[:, :, :, :, axis].transpose(0, 1, 4, 5, 2, 3)
        coord = np.empty((n, groups, oh, ow, kh, kw), offset.dtype)
        np.add(moved, (pixel + tap).astype(offset.dtype), out=coord)
        coords.append(coord)
    return coords


def _sampling_plan(
    offset: np.ndarray, mask: np.ndarray | None, size: Sequence[int], kernel: Sequence[int],
    strides: Sequence[int], dil: Sequence[int], pads: Sequence[int], out: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Indices into the zero-bordered plane of :func:`_bordered_plane` and weights of the
    four bilinear corners of every sample, with the mask folded into the weights.

    Both are (N, offset_group, 4, L, K) scratch arrays for L output pixels and K kernel taps
    (pixel-major, the order the columns are gathered in). A point outside the image reads
    the zero block at the start of the plane's last two rows with weight 1.
    """
    n = offset.shape[0]
    taps, length = math.prod(kernel), math.prod(out)
    height, width = size
    pitch = width + 2
    h, w = _coordinates(offset, kernel, strides, dil, pads, out)
    groups = h.shape[1]
    with np.errstate(invalid="ignore"):
        outside = ~((h > -1) & (h < height) & (w > -1) & (w < width))
    top, left = np.floor(h), np.floor(w)
    h -= top  # h and w become the fractions lh, lw
    w -= left
    for array, value in ((h, 0), (w, 0), (top, height), (left, -1)):
        np.copyto(array, value, where=outside)
    index = scratch(4, (n, groups, 4, length, taps), np.intp)
    first = index[:, :, 0]
    np.copyto(first, top.reshape(first.shape), casting="unsafe")
    first += 1
    first *= pitch
    np.add(first, left.reshape(first.shape), out=first, casting="unsafe")
    first += 1
    for corner, step in enumerate((1, pitch, pitch + 1), start=1):
        np.add(first, step, out=index[:, :, corner])
    lh, lw = h, w
    hh, hw = 1 - lh, 1 - lw
    if mask is not None:
        scale = mask.reshape(n, groups, *kernel, *out).transpose(0, 1, 4, 5, 2, 3)
        hh *= scale
        lh *= scale
    weight = scratch(5, (n, groups, 4, length, taps), offset.dtype)
    for corner, (a, b) in enumerate(((hh, hw), (hh, lw), (lh, hw), (lh, lw))):
        np.multiply(a.reshape(n, groups, length, taps), b.reshape(n, groups, length, taps),
                    out=weight[:, :, corner])  # fmt: skip
    return index, weight


def _segments(c: int, group: int, offset_group: int) -> list[tuple[int, int, int, int]]:
    """(first channel, last + 1, conv group, offset group) of each run of channels that
    lies in one conv group and one offset group."""
    cg, cog = c // group, c // offset_group
    step = math.gcd(cg, cog)
    return [(s, s + step, s // cg, s // cog) for s in range(0, c, step)]


def _bordered_plane(x: np.ndarray) -> np.ndarray:
    """Channels (C, H, W) as a channels-last ((H + 3) * (W + 2), C) scratch plane: the
    image framed by zeros, one row above, two below and one column on each side."""
    c, height, width = x.shape
    plane = scratch(3, (height + 3, width + 2, c), x.dtype)
    plane[0] = 0
    plane[height + 1 :] = 0
    plane[1 : height + 1, 0] = 0
    plane[1 : height + 1, width + 1] = 0
    plane[1 : height + 1, 1 : width + 1] = x.transpose(1, 2, 0)
    return plane.reshape(-1, c)


def _columns(
    x: np.ndarray, index: np.ndarray, weight: np.ndarray, group: int, offset_group: int
) -> np.ndarray:
    """The deformable im2col matrix of one image x (C, H, W): (L, group, K, C/group), where
    each channel run gathers its four corners (channels last) and weighs them."""
    c = x.shape[0]
    _, _, length, taps = index.shape
    cg = c // group
    cols = scratch(1, (length, group, taps, cg), x.dtype)
    for first, last, g, o in _segments(c, group, offset_group):
        plane = _bordered_plane(x[first:last])
        target = cols[:, g, :, first - g * cg : last - g * cg]  # (L, K, run)
        tmp = scratch(2, (length, taps, last - first), x.dtype)
        for corner in range(4):
            np.take(plane, index[o, corner], axis=0, out=tmp, mode="clip")
            scale = weight[o, corner][..., None]
            if corner == 0:
                np.multiply(tmp, scale, out=target)
            else:
                tmp *= scale
                target += tmp
    return cols


def _grouped_weights(w: np.ndarray, group: int) -> np.ndarray:
    """W (M, C/group, kh, kw) as (group, M/group, K * C/group), taps outer, channels inner
    (the layout of :func:`_columns`)."""
    m, cg = w.shape[:2]
    taps = w.shape[2] * w.shape[3]
    wg = w.reshape(group, m // group, cg, taps).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(wg).reshape(group, m // group, taps * cg)


def deform_conv(
    X: Any, W: Any, offset: Any, B: Any = None, mask: Any = None, *,
    dilations: Sequence[int] | None = None, group: int = 1,
    kernel_shape: Sequence[int] | None = None, offset_group: int = 1,
    pads: Sequence[int] | None = None, strides: Sequence[int] | None = None,
    weights: Callable[[np.dtype], np.ndarray] | None = None,
) -> np.ndarray:  # fmt: skip
    """2-D deformable convolution (onnxruntime's sampling rules; see the module docstring).

    ``weights``, when given, returns W already laid out by :func:`_grouped_weights` for a
    compute dtype (prepared once per node for constant weights).
    """
    X, W = np.asarray(X), np.asarray(W)
    dtype = np.dtype(np.float32) if X.dtype == np.float16 else X.dtype
    x, w = X.astype(dtype, copy=False), W.astype(dtype, copy=False)
    off = np.asarray(offset).astype(dtype, copy=False)
    b = None if B is None else np.asarray(B).astype(dtype, copy=False)
    mk = None if mask is None else np.asarray(mask).astype(dtype, copy=False)
    kernel = tuple(W.shape[2:]) if W.ndim == 4 else ()
    if kernel_shape is not None and tuple(kernel_shape) != kernel:
        raise ValueError(f"DeformConv: kernel_shape {list(kernel_shape)} != W's {kernel}")
    strides, dil = strides or (1, 1), dilations or (1, 1)
    pads = pads or (0, 0, 0, 0)
    out = _output_size(x.shape[2:], kernel, strides, dil, pads) if x.ndim == 4 else ()
    _validate(x, w, off, b, mk, group, offset_group, out)
    n, m = x.shape[0], w.shape[0]
    index, weight = _sampling_plan(off, mk, x.shape[2:], kernel, strides, dil, pads, out)
    wg = weights(dtype) if weights is not None else _grouped_weights(w, group)
    y = fresh((n, group, m // group, math.prod(out)), dtype)
    for image in range(n):
        cols = _columns(x[image], index[image], weight[image], group, offset_group)
        length = cols.shape[0]
        np.matmul(wg, cols.reshape(length, group, -1).transpose(1, 2, 0), out=y[image])
    y = y.reshape(n, m, *out)
    if b is not None:
        y += b.reshape(1, m, 1, 1)
    return y.astype(X.dtype, copy=False)


@kernels.register(
    "DeformConv", versions=(19, 22), dtypes=FLOATS, check=_check, factory=True, fresh_output=True
)
@factory(dilations=None, group=1, kernel_shape=None, offset_group=1, pads=None, strides=None)
def deform_conv_kernel(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., Any]:
    """:func:`deform_conv`; constant weights are laid out for the matmul once per node."""
    constant = info.constant(1)
    prepared: dict[np.dtype, np.ndarray] = {}

    def weights(dtype: np.dtype) -> np.ndarray:
        if dtype not in prepared:
            prepared[dtype] = _grouped_weights(constant.astype(dtype), attrs["group"])
        return prepared[dtype]

    def run(X: Any, W: Any, offset: Any, B: Any = None, mask: Any = None) -> np.ndarray:
        return deform_conv(
            X, W, offset, B, mask, **attrs, weights=weights if constant is not None else None
        )

    return run
