"""Winograd F(2x2, 3x3): a stride-1 3x3 convolution with 2.25x fewer multiply-adds.

Each 4x4 input tile d becomes V = Bᵀ d B, each 3x3 filter g becomes U = G g Gᵀ (once per
node), and a 2x2 output tile is Aᵀ M A with M = U ⊙ V summed over the input channels: 16
matrix products (K, C) @ (C, tiles), one per position in the 4x4 transformed tile, instead
of im2col's one (K, 9C) @ (9C, 4 * tiles) product. The transforms are adds and subtracts,
each one numpy operation over every tile of every channel at once:

- the zero-padded input is split into four parity planes (even or odd rows, even or odd
  columns), so that entry (i, j) of tile (ty, tx) is plane[i % 2][j % 2] at
  (ty + i // 2, tx + j // 2): a flat shifted slice of one plane, as in the pooling kernels
  (the positions past each plane's last tile row and column hold garbage nobody reads);
- the output's four parity planes are written back into the output grid.

It pays where the products dominate: many channels on planes of 14x14 and more (measured
in :func:`pays`). Results differ from im2col's by rounding only (a few float32 ulps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxep.reference._common import fresh, scratch

__all__ = ["conv3x3", "pays", "transformed_filters"]

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
#: Y = Aᵀ M A on flattened tiles, as a (4, 16) matrix.
_AA = np.einsum("ra,sb->rsab", _AT, _AT).reshape(4, 16)
#: Transformed-tile position whose product every output of the tile adds once: (1, 1).
_BIAS_POSITION = 5

# scratch slots of this module (see _common.scratch)
_PLANES, _ROWS, _TILES, _PRODUCTS, _QUADS = 30, 31, 32, 33, 34


def transformed_filters(w: np.ndarray) -> np.ndarray:
    """(K, C, 3, 3) filters as the (16, K, C) matrices G g Gᵀ, computed in float64."""
    k, c = w.shape[:2]
    u = np.einsum("ai,kcij,bj->abkc", _G, w.astype(np.float64), _G)
    return np.ascontiguousarray(u.reshape(16, k, c).astype(w.dtype))


def pays(c: int, k: int, out: Sequence[int]) -> bool:
    """Whether Winograd beats im2col for C -> K channels on an ``out`` plane.

    Measured against im2col, interleaved, float32 on numpy's OpenBLAS with 2 threads:
    0.77-0.93x of its time on 14x14 planes from 64 channels, 0.69-0.76x from 256 channels
    on 14x14 to 56x56; 1.1-1.4x on 28x28 and 56x56 planes below 256 channels (OpenBLAS
    runs the (128, 128) @ (128, 225) products of a 28x28 plane on one core), on 7x7 planes
    (the transforms' fixed costs) and below 64 channels (thin products).
    """
    channels, plane = min(c, k), min(out)
    return plane >= 14 and (channels >= 256 or (channels >= 64 and plane <= 16))


def conv3x3(
    x: np.ndarray, u: np.ndarray, bias: np.ndarray | None, begin: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:  # fmt: skip
    """Stride-1, undilated 3x3 conv of ``x`` (N, C, H, W) with begin pads ``begin`` (>= 0)
    and output plane ``out``; ``u`` from :func:`transformed_filters`."""
    n, c = x.shape[:2]
    k = u.shape[1]
    th, tw = -(-out[0] // 2), -(-out[1] // 2)  # tiles per column and row
    rows, cols = th + 1, tw + 1  # parity plane size: one tile row and column of overlap
    total = n * c * rows * cols
    planes = scratch(_PLANES, (2, 2, n, c, rows, cols), x.dtype)
    planes.fill(0)
    for rp in (0, 1):
        for cp in (0, 1):
            _fill_plane(planes[rp, cp], x, rp - begin[0], cp - begin[1])
    tiles = _input_transform(planes.reshape(2, 2, total), cols, (16, n, c, rows * cols))
    products = scratch(_PRODUCTS, (16, n, k, rows * cols), x.dtype)
    np.matmul(u[:, None], tiles, out=products)
    if bias is not None:  # added once to the product every output of a tile sums
        products[_BIAS_POSITION] += bias.reshape(k, 1)
    quads = _output_transform(products.reshape(16, -1))
    y = fresh((n, k, *out), x.dtype)
    quads = quads.reshape(2, 2, n, k, rows, cols)
    for r in (0, 1):
        for s in (0, 1):
            height, width = (out[0] - r + 1) // 2, (out[1] - s + 1) // 2
            y[:, :, r::2, s::2] = quads[r, s, :, :, :height, :width]
    return y


def _fill_plane(plane: np.ndarray, x: np.ndarray, row0: int, col0: int) -> None:
    """plane[..., t, v] = x[..., 2t + row0, 2v + col0] where that lies inside x."""
    spans = []
    for first, size, length in zip((row0, col0), x.shape[2:], plane.shape[2:]):
        t0 = max(0, -(first // 2))
        start = 2 * t0 + first
        count = min(length - t0, (size - start + 1) // 2) if start < size else 0
        if count <= 0:
            return
        spans.append((t0, start, count))
    (t0, r0, nr), (v0, c0, nc) = spans
    source = x[:, :, r0 : r0 + 2 * nr - 1 : 2, c0 : c0 + 2 * nc - 1 : 2]
    plane[:, :, t0 : t0 + nr, v0 : v0 + nc] = source


def _input_transform(planes: np.ndarray, cols: int, shape: tuple[int, ...]) -> np.ndarray:
    """V = Bᵀ d B for every tile: the tile's rows first (per column parity), then its
    columns, each entry a flat shifted slice (elementwise: faster here than a (16, 16)
    product, whose right-hand side numpy would first copy out of the planes)."""
    total = planes.shape[-1]
    span = total - cols  # positions whose next tile row exists
    rowt = scratch(_ROWS, (4, 2, span), planes.dtype)
    for cp in (0, 1):
        _apply_bt(planes[0, cp], planes[1, cp], cols, rowt[:, cp])
    tiles = scratch(_TILES, shape, planes.dtype)
    flat = tiles.reshape(16, total)
    m = span - 1  # positions whose next tile column exists
    for a in range(4):
        _apply_bt(rowt[a, 0], rowt[a, 1], 1, flat[4 * a : 4 * a + 4, :m])
    flat[:, m:] = 0  # past the last tile: read by no output, kept finite
    return tiles


def _apply_bt(even: np.ndarray, odd: np.ndarray, step: int, out: np.ndarray) -> None:
    """Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]] along one tile axis:
    entries 0 and 2 come from ``even``, 1 and 3 from ``odd``, entries 2 and 3 ``step``
    positions on; writes the four rows of ``out``."""
    n = out.shape[-1]
    here, later = even[:n], even[step : step + n]
    np.subtract(here, later, out=out[0])
    np.add(odd[:n], later, out=out[1])
    np.subtract(later, odd[:n], out=out[2])
    np.subtract(odd[:n], odd[step : step + n], out=out[3])


def _output_transform(products: np.ndarray) -> np.ndarray:
    """Aᵀ M A for every tile as one (4, 16) @ (16, positions) product: (2, 2, ...)."""
    quads = scratch(_QUADS, (2, 2, products.shape[-1]), products.dtype)
    np.matmul(_AA.astype(products.dtype), products, out=quads.reshape(4, -1))
    return quads
