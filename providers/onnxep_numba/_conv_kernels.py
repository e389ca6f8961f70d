"""The numba loops behind Conv: one parallel launch per convolution.

``conv_tiles`` splits the output into tasks (image, group, block of output channels, tile of
output positions). Each task builds the im2col columns of its tile in a private buffer
(skipped for 1x1 stride-1 unpadded convolutions, whose input already is the column matrix),
calls a single-threaded BLAS GEMM on it, then adds the bias and applies the activation to
its block while it is still in cache. ``depthwise`` is a direct loop per output plane with
the same epilogue. Activation codes: 0 none, 1 Relu, 2 LeakyRelu(alpha), 3 Clip(alpha,
beta), 4 Sigmoid.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from onnxep_numba._jit import jit

__all__ = ["conv_tiles", "depthwise", "epilogue_rows", "im2col_rows"]


@jit(parallel=False)
def _activate(row, b, act, alpha, beta):
    """``row = act(row + b)`` in place."""
    n = row.shape[0]
    zero = row.dtype.type(0)
    one = row.dtype.type(1)
    if act == 0:
        for i in range(n):
            row[i] = row[i] + b
    elif act == 1:
        for i in range(n):
            v = row[i] + b
            row[i] = zero if v < zero else v
    elif act == 2:
        for i in range(n):
            v = row[i] + b
            row[i] = v if v >= zero else v * alpha
    elif act == 3:
        for i in range(n):
            v = row[i] + b
            v = alpha if v < alpha else v
            row[i] = beta if v > beta else v
    else:
        for i in range(n):
            v = row[i] + b
            e = math.exp(-abs(v))
            row[i] = one / (one + e) if v >= zero else e / (one + e)


@jit(parallel=False)
def im2col_rows(x, cols, geo, c0, p0, p1):
    """Columns of output positions ``p0..p1`` for input channels ``c0..`` into ``cols``."""
    kh, kw, sh, sw, dh, dw, ph, pw, ow = (
        geo[1],
        geo[2],
        geo[3],
        geo[4],
        geo[5],
        geo[6],
        geo[7],
        geo[8],
        geo[10],
    )
    h, w = x.shape[1], x.shape[2]
    k = cols.shape[0]
    zero = cols.dtype.type(0)
    for r in range(k):
        c = c0 + r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        off = kj * dw - pw
        lo_all = max(0, (sw - 1 - off) // sw)  # first ox reading inside the row
        hi_all = (w - 1 - off) // sw + 1
        p = p0
        while p < p1:
            oy = p // ow
            ox0 = p - oy * ow
            ox1 = min(ow, ox0 + p1 - p)
            dst = cols[r, p - p0 : p - p0 + ox1 - ox0]
            iy = oy * sh - ph + ki * dh
            if iy < 0 or iy >= h:
                dst[:] = zero
            else:
                src = x[c, iy]
                lo = min(max(lo_all, ox0), ox1)
                hi = max(min(hi_all, ox1), lo)
                for ox in range(ox0, lo):
                    dst[ox - ox0] = zero
                for ox in range(lo, hi):
                    dst[numba.uint64(ox - ox0)] = src[numba.uint64(ox * sw + off)]
                for ox in range(hi, ox1):
                    dst[ox - ox0] = zero
            p += ox1 - ox0


@jit
def conv_tiles(gemm, x, w, bias, y, geo, act, alpha, beta):
    """Conv as (im2col tile -> GEMM -> epilogue) tasks; ``y`` is ``[N, M, OH*OW]``."""
    n_batch, c_in = x.shape[0], x.shape[1]
    m_out, p_all = y.shape[1], y.shape[2]
    group, tile, m_blocks, direct = geo[0], geo[11], geo[12], geo[13]
    mg = m_out // group
    cg = c_in // group
    k = cg * geo[1] * geo[2]
    n_tiles = (p_all + tile - 1) // tile
    step = (mg + m_blocks - 1) // m_blocks
    size = x.itemsize
    per_image = group * m_blocks * n_tiles
    for t in numba.prange(n_batch * per_image):
        n = t // per_image
        rest = t - n * per_image
        g = rest // (m_blocks * n_tiles)
        rest = rest - g * (m_blocks * n_tiles)
        m0 = g * mg + (rest // n_tiles) * step
        m1 = min(g * mg + mg, m0 + step)
        p0 = (rest % n_tiles) * tile
        p1 = min(p_all, p0 + tile)
        if m1 > m0:
            cols = np.empty((1, 1) if direct else (k, p1 - p0), dtype=x.dtype)
            if direct:  # the input itself is the column matrix
                b_ptr, ldb = x[n].ctypes.data + (g * cg * p_all + p0) * size, p_all
            else:
                im2col_rows(x[n], cols, geo, g * cg, p0, p1)
                b_ptr, ldb = cols.ctypes.data, p1 - p0
            c_ptr = y[n, m0:].ctypes.data + p0 * size
            a_ptr = w[m0:].ctypes.data
            one, zero = y.dtype.type(1), y.dtype.type(0)
            gemm(101, 111, 111, m1 - m0, p1 - p0, k, one, a_ptr, k, b_ptr, ldb, zero, c_ptr, p_all)
            # numba frees an array after its last use in the code, and the GEMM only saw its
            # address: this store keeps ``cols`` alive until the GEMM has returned
            cols[0, 0] = 0
            for m in range(m0, m1):
                b = bias[m] if bias.shape[0] == m_out else y.dtype.type(0)
                if act != 0 or bias.shape[0] == m_out:
                    _activate(y[n, m, p0:p1], b, act, alpha, beta)


@jit
def depthwise(x, wt, bias, y, mult, geo, act, alpha, beta):
    """One input channel per output channel: per output plane, the input is copied once into
    a zero-padded plane, then each filter tap is one long loop over it (stride 1: the output
    is computed in the padded row width and the valid columns kept), then the epilogue."""
    n_batch, _, h, w = x.shape
    m_out, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    kh, kw, sh, sw, dh, dw, ph, pw = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    hp = max(h + ph, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + pw, (ow - 1) * sw + (kw - 1) * dw + 1)
    span = (oh - 1) * wp + ow
    for t in numba.prange(n_batch * m_out):
        n = t // m_out
        m = t - n * m_out
        c = m // mult
        xp = np.zeros((hp, wp), dtype=x.dtype)
        for iy in range(h):
            for ix in range(w):
                xp[iy + ph, ix + pw] = x[n, c, iy, ix]
        flat = xp.reshape(hp * wp)
        if sh == 1 and sw == 1:
            acc = np.zeros(span, dtype=x.dtype)
            for ki in range(kh):
                for kj in range(kw):
                    wv = wt[m, 0, ki, kj]
                    off = ki * dh * wp + kj * dw
                    for i in range(span):
                        acc[numba.uint64(i)] += wv * flat[numba.uint64(i + off)]
            for oy in range(oh):
                for ox in range(ow):
                    y[n, m, oy, ox] = acc[oy * wp + ox]
        else:
            for oy in range(oh):
                yr = y[n, m, oy]
                for ox in range(ow):
                    yr[ox] = 0
                for ki in range(kh):
                    xr = xp[oy * sh + ki * dh]
                    for kj in range(kw):
                        wv = wt[m, 0, ki, kj]
                        for ox in range(ow):
                            yr[numba.uint64(ox)] += wv * xr[numba.uint64(ox * sw + kj * dw)]
        b = bias[m] if bias.shape[0] == m_out else y.dtype.type(0)
        if act != 0 or bias.shape[0] == m_out:
            for oy in range(oh):
                _activate(y[n, m, oy], b, act, alpha, beta)


@jit
def epilogue_rows(y, bias, act, alpha, beta):
    """Bias and activation over ``y[N*M, P]`` (the fallback path without numba BLAS)."""
    rows = y.shape[0]
    m_out = bias.shape[0]
    for r in numba.prange(rows):
        _activate(y[r], bias[r % m_out] if m_out else y.dtype.type(0), act, alpha, beta)
