"""Conv (1-D and 2-D, groups, depthwise, pads/auto_pad, strides, dilations) with a fused
bias + activation epilogue.

Depthwise convolutions (one input channel per output channel) run a direct
``prange`` loop over padded planes. Everything else is im2col (a parallel numba loop,
tiled over output rows to bound its memory) followed by a GEMM batched over groups
(:mod:`onnxep_numba._blas`); 1x1 stride-1 unpadded convolutions skip im2col. The epilogue adds the
bias and applies the activation the segment compiler fused in (``act``: 0 none, 1 Relu,
2 LeakyRelu(alpha), 3 Clip(alpha, beta), 4 Sigmoid) in one pass over the output.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._blas import matmul as blas_matmul
from onnxep_numba._jit import jit
from onnxep_numba._registry import FLOATS, all_checks, check_static_rank, kernels

__all__ = ["conv", "conv_act", "conv_geometry"]

#: im2col buffers larger than this many elements are built in tiles of output rows.
COLS_BUDGET = 1 << 22
ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID = range(5)


def conv_geometry(
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    auto_pad: str,
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    strides: tuple[int, ...],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(pads_begin, strides, dilations, out_hw) of a 2-D conv or pool window."""
    s = tuple(strides) or (1, 1)
    d = tuple(dilations) or (1, 1)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(2):
            out = -(-in_hw[i] // s[i])
            total = max(0, (out - 1) * s[i] + (k_hw[i] - 1) * d[i] + 1 - in_hw[i])
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
    elif auto_pad == "VALID":
        begin, end = [0, 0], [0, 0]
    else:
        p = tuple(pads) or (0, 0, 0, 0)
        begin, end = [p[0], p[1]], [p[2], p[3]]
    out_hw = tuple(
        (in_hw[i] + begin[i] + end[i] - (k_hw[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(2)
    )
    return (begin[0], begin[1]), (s[0], s[1]), (d[0], d[1]), (out_hw[0], out_hw[1])


@jit
def _im2col(x, cols, kh, kw, sh, sw, dh, dw, ph, pw, r0, r1, ow):
    c_in, h, w = x.shape
    rows = c_in * kh * kw
    for r in numba.prange(rows):
        c = r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        for oy in range(r0, r1):
            iy = oy * sh - ph + ki * dh
            base = (oy - r0) * ow
            if iy < 0 or iy >= h:
                for ox in range(ow):
                    cols[r, base + ox] = 0
                continue
            for ox in range(ow):
                ix = ox * sw - pw + kj * dw
                cols[r, base + ox] = x[c, iy, ix] if 0 <= ix < w else 0


@jit
def _depthwise(x, wt, y, mult, sh, sw, dh, dw, ph, pw):
    n_batch, _, h, w = x.shape
    m_out, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    kh, kw = wt.shape[2], wt.shape[3]
    for t in numba.prange(n_batch * m_out):
        n = t // m_out
        m = t - n * m_out
        c = m // mult
        for oy in range(oh):
            yr = y[n, m, oy]
            for ox in range(ow):
                yr[ox] = 0
            for ki in range(kh):
                iy = oy * sh - ph + ki * dh
                if iy < 0 or iy >= h:
                    continue
                xr = x[n, c, iy]
                for kj in range(kw):
                    wv = wt[m, 0, ki, kj]
                    off = kj * dw - pw
                    lo = max(0, (sw - 1 - off) // sw)  # first ox reading inside the row
                    hi = min(ow, (w - 1 - off) // sw + 1)
                    for ox in range(lo, hi):
                        yr[numba.uint64(ox)] += wv * xr[numba.uint64(ox * sw + off)]


@jit
def _epilogue(y, bias, has_bias, act, alpha, beta):
    n_rows, p = y.shape
    m_out = bias.shape[0]
    zero = y.dtype.type(0)
    one = y.dtype.type(1)
    for r in numba.prange(n_rows):
        b = bias[r % m_out] if has_bias else zero
        row = y[r]
        if act == 0:
            for i in range(p):
                row[i] = row[i] + b
        elif act == 1:
            for i in range(p):
                v = row[i] + b
                row[i] = zero if v < zero else v
        elif act == 2:
            for i in range(p):
                v = row[i] + b
                row[i] = v if v >= zero else v * alpha
        elif act == 3:
            for i in range(p):
                v = row[i] + b
                v = alpha if v < alpha else v
                row[i] = beta if v > beta else v
        else:
            for i in range(p):
                v = row[i] + b
                e = math.exp(-abs(v))
                row[i] = one / (one + e) if v >= zero else e / (one + e)


def conv_act(
    X: np.ndarray,
    W: np.ndarray,
    B: np.ndarray | None = None,
    *,
    act: int = ACT_NONE,
    alpha: float = 0.0,
    beta: float = 0.0,
    auto_pad: str = "NOTSET",
    dilations: tuple[int, ...] = (),
    group: int = 1,
    kernel_shape: tuple[int, ...] = (),
    pads: tuple[int, ...] = (),
    strides: tuple[int, ...] = (),
) -> np.ndarray:
    """Conv followed by bias and an activation, in one epilogue pass."""
    one_d = X.ndim == 3
    if one_d:
        X, W = X[:, :, None, :], W[:, :, None, :]
        pads = (0, pads[0], 0, pads[1]) if pads else ()
        strides, dilations = (1, *strides) if strides else (), (1, *dilations) if dilations else ()
    x = np.ascontiguousarray(X)
    w = np.ascontiguousarray(W, dtype=x.dtype)
    n_batch, c_in, h, wd = x.shape
    m_out, c_group, kh, kw = w.shape
    (ph, pw), (sh, sw), (dh, dw), (oh, ow) = conv_geometry(
        (h, wd), (kh, kw), auto_pad, dilations, pads, strides
    )
    y = np.empty((n_batch, m_out, oh, ow), dtype=x.dtype)
    if y.size:
        if c_group == 1 and group == c_in:
            _depthwise(x, w, y, m_out // c_in, sh, sw, dh, dw, ph, pw)
        elif (kh, kw, sh, sw) == (1, 1, 1, 1) and group == 1 and (ph, pw, oh, ow) == (0, 0, h, wd):
            np.matmul(
                w.reshape(m_out, c_in),
                x.reshape(n_batch, c_in, h * wd),
                out=y.reshape(n_batch, m_out, oh * ow),
            )
        else:
            _gemm_conv(x, w, y, group, (kh, kw, sh, sw, dh, dw, ph, pw))
        bias = np.zeros(1, x.dtype) if B is None else np.ascontiguousarray(B, dtype=x.dtype)
        if B is not None or act != ACT_NONE:
            t = x.dtype.type
            _epilogue(
                y.reshape(n_batch * m_out, oh * ow), bias, B is not None, act, t(alpha), t(beta)
            )
    return y[:, :, 0, :] if one_d else y


def _gemm_conv(
    x: np.ndarray, w: np.ndarray, y: np.ndarray, group: int, geo: tuple[int, ...]
) -> None:
    """im2col + batched-over-groups BLAS, tiled over output rows."""
    kh, kw, sh, sw, dh, dw, ph, pw = geo
    n_batch, c_in = x.shape[:2]
    m_out, oh, ow = y.shape[1:]
    ck = c_in * kh * kw
    per_group = ck // group
    wg = w.reshape(group, m_out // group, per_group)
    rows = max(1, min(oh, COLS_BUDGET // max(1, ck * ow)))
    cols = np.empty((ck, rows * ow), dtype=x.dtype)
    for n in range(n_batch):
        yn = y[n].reshape(group, m_out // group, oh * ow)
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            part = cols[:, : (r1 - r0) * ow]
            _im2col(x[n], part, kh, kw, sh, sw, dh, dw, ph, pw, r0, r1, ow)
            blas_matmul(wg, part.reshape(group, per_group, -1), yn[:, :, r0 * ow : r1 * ow])


def _conv_check(info: NodeInfo) -> str | None:
    w_rank = info.input_type(1).rank
    if w_rank is not None and w_rank not in (3, 4):
        return f"weight has rank {w_rank}; only 1-D and 2-D convolutions are implemented"
    return None


@kernels.register(
    "Conv",
    versions=(1, 11, 22),
    dtypes=FLOATS,
    check=all_checks(check_static_rank(0, (3, 4)), _conv_check),
)
def conv(
    X: np.ndarray,
    W: np.ndarray,
    B: np.ndarray | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: tuple[int, ...] = (),
    group: int = 1,
    kernel_shape: tuple[int, ...] = (),
    pads: tuple[int, ...] = (),
    strides: tuple[int, ...] = (),
) -> np.ndarray:
    """ONNX Conv for 1-D and 2-D inputs."""
    return conv_act(
        X,
        W,
        B,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        kernel_shape=kernel_shape,
        pads=pads,
        strides=strides,
    )
