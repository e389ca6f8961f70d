"""One parallel kernel for every "read each output element from a computed place" op.

Each output axis gets an offset table: ``maps[a][i]`` is the element offset its index ``i``
contributes in the (contiguous) source, or -1 for "outside: write the fill value". Summing
one entry per axis addresses the source, so Transpose (permuted strides), Pad (constant,
reflect, edge, wrap), Slice, Expand, Tile and nearest-neighbour Resize are all tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numba
import numpy as np

from onnxep_numba._jit import jit

__all__ = ["GatherPlan", "gather_axes", "plan_axes", "run_plan", "source_strides"]


@jit
def _gather(src, out, dims, maps, starts, fill, unit):
    r = dims.shape[0]
    last = dims[r - 1]
    n_outer = 1
    for d in range(r - 1):
        n_outer *= dims[d]
    lm = starts[r - 1]
    for row in numba.prange(n_outer):
        rem = row * 1  # a fresh variable: numba rejects rebinding an alias of the loop index
        base = 0
        valid = True
        for d in range(r - 2, -1, -1):
            q = rem // dims[d]
            i = rem - q * dims[d]
            rem = q
            off = maps[starts[d] + i]
            if off < 0:
                valid = False
            base += off
        w = out[row * last : (row + 1) * last]
        if valid and unit:  # the last axis reads a contiguous run: a vectorised copy
            for j in range(last):
                w[numba.uint64(j)] = src[numba.uint64(base + j)]
        else:
            for j in range(last):
                o = maps[lm + j]
                w[j] = src[base + o] if valid and o >= 0 else fill


def source_strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-contiguous array of ``shape``."""
    strides = [1] * len(shape)
    for a in range(len(shape) - 2, -1, -1):
        strides[a] = strides[a + 1] * int(shape[a + 1])
    return strides


@dataclasses.dataclass(frozen=True)
class GatherPlan:
    """The offset tables of one gather, built once and reusable for every call."""

    shape: tuple[int, ...]
    table: np.ndarray
    starts: np.ndarray
    dims: np.ndarray
    unit: bool  # the last axis reads a contiguous run (0, 1, 2, ...)


def plan_axes(maps: Sequence[np.ndarray]) -> GatherPlan:
    """A plan from per-axis offset tables (see :func:`gather_axes`)."""
    shape = tuple(len(m) for m in maps)
    if not maps:
        empty = np.zeros(0, np.int64)
        return GatherPlan(shape, empty, empty, empty, False)
    table = np.concatenate([np.asarray(m, dtype=np.int64) for m in maps])
    starts = np.cumsum([0] + [len(m) for m in maps[:-1]]).astype(np.int64)
    last = np.asarray(maps[-1], dtype=np.int64)
    unit = bool(np.array_equal(last, np.arange(last.size)))
    return GatherPlan(shape, table, starts, np.array(shape, dtype=np.int64), unit)


def gather_axes(src: np.ndarray, maps: Sequence[np.ndarray], fill: float = 0) -> np.ndarray:
    """The array whose element ``(i0, i1, ...)`` is ``src.flat[sum(maps[a][i_a])]`` (or
    ``fill`` where any entry is negative). ``src`` must be C-contiguous."""
    return run_plan(plan_axes(maps), src, fill)


def run_plan(plan: GatherPlan, src: np.ndarray, fill: float = 0) -> np.ndarray:
    """Run a gather plan on a C-contiguous ``src``."""
    out = np.empty(plan.shape, dtype=src.dtype)
    if out.size == 0:
        return out
    if not plan.shape:
        out[()] = src.reshape(-1)[0]
        return out
    # pure data movement: one compiled kernel per item size, whatever the dtype
    bits = _UINTS.get(src.dtype.itemsize) if src.dtype.kind in "biuf" else None
    a, b = src.reshape(-1), out.reshape(-1)
    if bits is None:
        value = src.dtype.type(fill)
    else:
        a, b, value = a.view(bits), b.view(bits), np.array(fill, dtype=src.dtype).view(bits)[()]
    _gather(a, b, plan.dims, plan.table, plan.starts, value, plan.unit)
    return out


_UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
