"""Conv (1-D and 2-D, groups, depthwise, pads/auto_pad, strides, dilations) with a fused
bias + activation epilogue, in one parallel launch per convolution.

Depthwise convolutions (one input channel per output channel) run a direct loop per output
plane. Every other convolution is tiled over output positions (and output channels, when
there are fewer tiles than threads): each task builds its tile's im2col columns, calls a
single-threaded BLAS GEMM and applies bias + activation (:mod:`onnxep_numba._conv_kernels`);
1x1 stride-1 unpadded convolutions read the input as the column matrix. ``act`` is the
activation the segment compiler fused in: 0 none, 1 Relu, 2 LeakyRelu(alpha),
3 Clip(alpha, beta), 4 Sigmoid.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from onnxep.graph import NodeInfo
from onnxep_numba._conv_kernels import (
    conv_tiles,
    depthwise,
    depthwise_channels_last,
    epilogue_rows,
    im2col_rows,
    pad_planes,
    padded_extent,
)
from onnxep_numba._openblas import blas
from onnxep_numba._registry import FLOATS, all_checks, check_static_rank, contiguous, kernels

__all__ = ["conv", "conv_act", "conv_geometry"]

#: Elements of one task's im2col tile (K x positions), 4 MiB of float32. Smaller tiles made
#: narrow GEMMs that repack the whole weight matrix per call (ResNet-50's 3x3 convs ran at
#: 70-120 GFLOP/s with 64K-element tiles, 150-190 with these).
TILE_ELEMENTS = 1 << 20
#: Fewest output positions per tile (unless the image has fewer).
MIN_TILE = 64
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
    """Conv followed by bias and an activation, in one parallel launch."""
    one_d = X.ndim == 3
    if one_d:
        X, W = X[:, :, None, :], W[:, :, None, :]
        pads = (0, pads[0], 0, pads[1]) if pads else ()
        strides, dilations = (1, *strides) if strides else (), (1, *dilations) if dilations else ()
    x = contiguous(X)
    w = contiguous(np.asarray(W, dtype=x.dtype))
    n_batch, c_in, h, wd = x.shape
    m_out, c_group, kh, kw = w.shape
    (ph, pw), (sh, sw), (dh, dw), (oh, ow) = conv_geometry(
        (h, wd), (kh, kw), auto_pad, dilations, pads, strides
    )
    y = np.empty((n_batch, m_out, oh, ow), dtype=x.dtype)
    bias = np.zeros(0, x.dtype) if B is None else contiguous(np.asarray(B, dtype=x.dtype))
    t = x.dtype.type
    geo = [group, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow]
    if y.size == 0:
        pass
    elif c_group == 1 and group == c_in and m_out == c_in and c_in >= 32 * ow:
        # many channels on small planes: vectorise over channels (measured on ShuffleNet's
        # and MobileNet's shapes, both strides; the phased planes win below 32 channels per
        # output column)
        depthwise_channels_last(x, w, bias, y, np.array(geo, np.int64), act, t(alpha), t(beta))
    elif c_group == 1 and group == c_in:
        chunks = min(n_batch * m_out, 4 * numba.get_num_threads())
        geo_array = np.array(geo, np.int64)
        depthwise(x, w, bias, y, m_out // c_in, geo_array, act, t(alpha), t(beta), chunks)
    else:
        _gemm_conv(x, w.reshape(m_out, -1), bias, y, geo, (act, t(alpha), t(beta)))
    return y[:, :, 0, :] if one_d else y


def _gemm_conv(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    y: np.ndarray,
    geo: list[int],
    act: tuple[int, Any, Any],
) -> None:
    """im2col + GEMM + epilogue, as tiles of one parallel loop (or numpy without BLAS)."""
    n_batch, _, h, wd = x.shape
    m_out, k = w.shape
    group, oh, ow = geo[0], geo[9], geo[10]
    p_all = oh * ow
    direct = geo[1:9] == [1, 1, 1, 1, 1, 1, 0, 0] and (oh, ow) == (h, wd)
    lib = blas()
    y3 = y.reshape(n_batch, m_out, p_all)
    x = _padded(x, geo)
    if lib is None:
        cols = np.empty((n_batch, k * group, p_all), x.dtype)
        full = np.array([*geo, p_all, 1, 0], np.int64)
        for n in range(n_batch):
            im2col_rows(x[n], cols[n], full, 0, 0, p_all)
        wg = w.reshape(group, m_out // group, k)
        y3[...] = np.matmul(wg, cols.reshape(n_batch, group, k, p_all)).reshape(y3.shape)
        epilogue_rows(y3.reshape(-1, p_all), bias, *act)
        return
    lib.single_threaded()
    tile = min(p_all, max(MIN_TILE, (TILE_ELEMENTS // max(k, 1)) // 16 * 16))
    threads = numba.get_num_threads()
    if n_batch * group * -(-p_all // tile) < threads and p_all >= threads * MIN_TILE:
        tile = -(-p_all // threads)  # enough tiles to keep every thread busy
    tasks = n_batch * group * -(-p_all // tile)
    m_blocks = max(1, min(-(-threads // tasks), (m_out // group) // 16)) if tasks < threads else 1
    full = np.array([*geo, tile, m_blocks, int(direct)], np.int64)
    gemm = lib.sgemm if x.dtype == np.float32 else lib.dgemm
    conv_tiles(gemm, x, w, bias, y3, full, *act)


def _padded(x: np.ndarray, geo: list[int]) -> np.ndarray:
    """``x`` with the zero border every window reads (``x`` itself when none is read);
    ``geo``'s pads then count from the padded origin (set to 0)."""
    _, _, h, wd = x.shape
    ph, pw, oh, ow = geo[7:11]
    hp, wp = padded_extent(h, wd, oh, ow, np.array(geo, np.int64))
    geo[7:9] = [0, 0]
    if (hp, wp) == (h, wd):
        return x
    xp = np.empty((*x.shape[:2], hp, wp), x.dtype)
    pad_planes(x, xp, ph, pw)
    return xp


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
