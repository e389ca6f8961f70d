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

__all__ = [
    "conv_tiles",
    "copy_phased",
    "depthwise",
    "depthwise_channels_last",
    "epilogue_rows",
    "im2col_rows",
    "pad_planes",
    "padded_extent",
    "phased_shape",
    "tap_offsets",
]


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
    """Columns of output positions ``p0..p1`` for input channels ``c0..`` into ``cols``.

    ``x`` (C, H, W) is already padded (see :func:`pad_planes`): every window read is inside
    it, so each (row, output row) pair is one bounds-free copy.
    """
    kh, kw, sh, sw, dh, dw, ow = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[10]
    h, w = x.shape[1], x.shape[2]
    flat = x.reshape(-1)
    k, width = cols.shape
    out = cols.reshape(-1)
    oy0 = p0 // ow
    for r in range(k):
        c = c0 + r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        base = (c * h + ki * dh) * w + kj * dw
        dst = r * width
        oy, ox, q = oy0, p0 - oy0 * ow, 0
        while q < p1 - p0:
            run = min(ow - ox, p1 - p0 - q)
            src = base + oy * sh * w + ox * sw
            if sw == 1:
                for i in range(run):
                    out[numba.uint64(dst + q + i)] = flat[numba.uint64(src + i)]
            else:
                for i in range(run):
                    out[numba.uint64(dst + q + i)] = flat[numba.uint64(src + i * sw)]
            q += run
            oy += 1
            ox = 0


@jit
def pad_planes(x, xp, ph, pw):
    """``x`` (N, C, H, W) into the interior of ``xp`` (N, C, Hp, Wp), zeros around it."""
    n_batch, c_in, h, w = x.shape
    hp, wp = xp.shape[2], xp.shape[3]
    zero = xp.dtype.type(0)
    for t in numba.prange(n_batch * c_in):
        n = t // c_in
        c = t - n * c_in
        src, dst = x[n, c], xp[n, c]
        for iy in range(hp):
            row = dst[iy]
            sy = iy - ph
            if sy < 0 or sy >= h:
                row[:] = zero
            else:
                for j in range(pw):
                    row[j] = zero
                for j in range(w):
                    row[numba.uint64(pw + j)] = src[sy, numba.uint64(j)]
                for j in range(pw + w, wp):
                    row[j] = zero


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


@jit(parallel=False)
def padded_extent(h, w, oh, ow, geo):
    """(rows, columns) of an input padded for window ``geo`` (kernel, strides, dilations,
    pads as in ``geo[1:9]``): the begin pads plus every cell a window of an output reads."""
    kh, kw, sh, sw, dh, dw, ph, pw = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    hp = max(h + ph, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + pw, (ow - 1) * sw + (kw - 1) * dw + 1)
    return hp, wp


@jit(parallel=False)
def phased_shape(h, w, oh, ow, geo):
    """(rows, columns) of each phase of a padded plane laid out by :func:`copy_phased`."""
    hp, wp = padded_extent(h, w, oh, ow, geo)
    return (hp + geo[3] - 1) // geo[3], (wp + geo[4] - 1) // geo[4]


@jit(parallel=False)
def copy_phased(padded, plane, sh, sw, hq, wq, ph, pw):
    """``plane`` (h, w) into the interior of a flat padded plane split into ``sh * sw``
    phases of ``hq`` rows and ``wq`` columns: padded cell ``(i * sh + a, j * sw + b)`` is at
    ``[a * sw + b, i, j]``. A window tap then reads, for every output, one contiguous run
    of the flattened ``oh x wq`` grid, whatever the strides (see :func:`tap_offsets`)."""
    h, w = plane.shape
    n = min(sw, 2)  # phases whose edges are bounded once, here; wider strides copy per phase
    first0, end0 = _first_inside(0, sw, pw), _end_inside(0, sw, pw, w, wq)
    first1, end1 = _first_inside(n - 1, sw, pw), _end_inside(n - 1, sw, pw, w, wq)
    lo, hi = max(first0, first1), min(end0, end1)  # columns both phases have in the plane
    hi = max(hi, lo)
    a, i = ph % sh, ph // sh  # padded row iy + ph is row i of row phase a
    for iy in range(h):
        row, base = plane[iy], (a * sw * hq + i) * wq
        a += 1
        if a == sh:
            a, i = 0, i + 1
        if sw > 2:
            for b in range(sw):
                first, end = _first_inside(b, sw, pw), _end_inside(b, sw, pw, w, wq)
                _copy_columns(padded, base + b * hq * wq, row, first, end, sw, b, pw)
            continue
        if sw == 2:  # both phases in one loop: LLVM vectorises the pair of strided reads
            second = base + hq * wq
            for j in range(lo, hi):
                col = numba.uint64(2 * j - pw)
                padded[numba.uint64(base + j)] = row[col]
                padded[numba.uint64(second + j)] = row[col + numba.uint64(1)]
        else:
            for j in range(lo, hi):
                padded[numba.uint64(base + j)] = row[numba.uint64(j - pw)]
        for b in range(n):  # the edge columns, outside the range the phases share
            first, end = (first0, end0) if b == 0 else (first1, end1)
            at = base + b * hq * wq
            _copy_columns(padded, at, row, first, min(end, lo), sw, b, pw)
            _copy_columns(padded, at, row, max(first, hi), end, sw, b, pw)


@jit(parallel=False)
def _copy_columns(padded, at, row, j0, j1, sw, b, pw):
    """Phase columns ``j0..j1`` of phase ``b`` from ``row`` to ``padded[at:]``."""
    for j in range(j0, j1):
        padded[numba.uint64(at + j)] = row[numba.uint64(j * sw + b - pw)]


@jit(parallel=False)
def _first_inside(b, sw, pw):
    """First column of phase ``b`` that lies inside the plane (not in the left pad)."""
    return max(0, (pw - b + sw - 1) // sw)


@jit(parallel=False)
def _end_inside(b, sw, pw, w, wq):
    """One past the last column of phase ``b`` inside the plane."""
    return min(wq, (w - 1 + pw - b) // sw + 1)


@jit(parallel=False)
def tap_offsets(geo, hq, wq):
    """Where each tap (ki, kj) of output (0, 0) lies in a plane laid out by
    :func:`copy_phased`, row-major over the taps; output ``(oy, ox)`` reads ``oy * wq + ox``
    further on."""
    kh, kw, sh, sw, dh, dw = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    offsets = np.empty(kh * kw, np.int64)
    for ki in range(kh):
        for kj in range(kw):
            r, c = ki * dh, kj * dw
            offsets[ki * kw + kj] = (((r % sh) * sw + c % sw) * hq + r // sh) * wq + c // sw
    return offsets


@jit(parallel=False)
def _tap_into(acc, src, n, off, wv):
    """acc[i] += wv * src[off + i] for i < n (unsigned indices: no wraparound checks)."""
    for i in range(n):
        acc[numba.uint64(i)] += wv * src[numba.uint64(off + i)]


@jit
def depthwise(x, wt, bias, y, mult, geo, act, alpha, beta, chunks):
    """One input channel per output channel. Each input plane is copied once into a
    zero-padded, phased plane (:func:`copy_phased`), so each filter tap is one long loop over
    the flattened output grid whatever the strides (the padding columns computed along the way
    are dropped). Planes are split into chunks that reuse their buffers."""
    n_batch, _, h, w = x.shape
    m_out, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    kh, kw, sh, sw, ph, pw = geo[1], geo[2], geo[3], geo[4], geo[7], geo[8]
    hq, wq = phased_shape(h, w, oh, ow, geo)
    span = (oh - 1) * wq + ow
    offsets = tap_offsets(geo, hq, wq)
    planes = n_batch * m_out
    per_chunk = (planes + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        padded = np.zeros(sh * sw * hq * wq, dtype=x.dtype)  # the borders stay zero
        acc = np.empty(span, dtype=x.dtype)
        for t in range(chunk * per_chunk, min(planes, (chunk + 1) * per_chunk)):
            n = t // m_out
            m = t - n * m_out
            copy_phased(padded, x[n, m // mult], sh, sw, hq, wq, ph, pw)
            acc[:] = 0
            for ki in range(kh):
                for kj in range(kw):
                    _tap_into(acc, padded, span, offsets[ki * kw + kj], wt[m, 0, ki, kj])
            b = bias[m] if bias.shape[0] == m_out else y.dtype.type(0)
            for oy in range(oh):
                yr = y[n, m, oy]
                for ox in range(ow):
                    yr[numba.uint64(ox)] = acc[numba.uint64(oy * wq + ox)]
                if act != 0 or bias.shape[0] == m_out:
                    _activate(yr, b, act, alpha, beta)


@jit
def depthwise_channels_last(x, wt, bias, y, geo, act, alpha, beta):
    """Depthwise conv (one input channel per output channel) for many channels on small
    planes: the input is copied channels-last into a zero-padded (N, H, W, C) buffer, so each
    filter tap of each output row is one loop over the channels, contiguous (vectorised)."""
    n_batch, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    kh, kw, sh, sw, dh, dw, ph, pw = geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    hp, wp = padded_extent(h, w, oh, ow, geo)
    src = np.zeros((n_batch, hp, wp, c), dtype=x.dtype)
    taps = np.empty((kh, kw, c), dtype=x.dtype)
    for ki in range(kh):
        for kj in range(kw):
            for ch in range(c):
                taps[ki, kj, ch] = wt[ch, 0, ki, kj]
    has_bias = bias.shape[0] == c
    for t in numba.prange(n_batch * h):
        n, iy = t // h, t % h
        for ch in range(c):
            row = x[n, ch, iy]
            for ix in range(w):
                src[n, iy + ph, ix + pw, ch] = row[ix]
    for t in numba.prange(n_batch * oh):
        n, oy = t // oh, t % oh
        acc = np.zeros((ow, c), dtype=x.dtype)
        for ox in range(ow):
            a = acc[ox]
            for ki in range(kh):
                for kj in range(kw):
                    s = src[n, oy * sh + ki * dh, ox * sw + kj * dw]
                    wv = taps[ki, kj]
                    for ch in range(c):
                        a[numba.uint64(ch)] += wv[numba.uint64(ch)] * s[numba.uint64(ch)]
        for ch in range(c):
            yr = y[n, ch, oy]
            for ox in range(ow):
                yr[ox] = acc[ox, ch]
            if act != 0 or has_bias:
                _activate(yr, bias[ch] if has_bias else y.dtype.type(0), act, alpha, beta)


@jit
def epilogue_rows(y, bias, act, alpha, beta):
    """Bias and activation over ``y[N*M, P]`` (the fallback path without numba BLAS)."""
    rows = y.shape[0]
    m_out = bias.shape[0]
    for r in numba.prange(rows):
        _activate(y[r], bias[r % m_out] if m_out else y.dtype.type(0), act, alpha, beta)
