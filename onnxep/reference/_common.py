"""Shared pieces of the hand-written reference kernels: dtype groups and support checks.

A check receives the node's :class:`~onnxep.graph.NodeInfo` and returns ``None`` to accept
it or a reason to decline it; a declined node runs on onnx's own reference op instead.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo

__all__ = [
    "ALL",
    "BOOL",
    "FLOATS",
    "INTS",
    "NUMERIC",
    "SIGNED",
    "UNSIGNED",
    "all_checks",
    "attr_in",
    "checked_indices",
    "dtype_name",
    "factory",
    "input_dtypes",
    "fresh",
    "quiet",
    "scratch",
]

FLOATS = ("float16", "float32", "float64")
SIGNED = ("int8", "int16", "int32", "int64")
UNSIGNED = ("uint8", "uint16", "uint32", "uint64")
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
BOOL = ("bool",)
#: Every dtype whose numpy semantics are plain: numbers and bool (no strings, no float8).
ALL = NUMERIC + BOOL

Check = Callable[[NodeInfo], "str | None"]


def dtype_name(info: NodeInfo, i: int) -> str | None:
    """The numpy dtype name of input ``i`` (``None`` when missing or unknown)."""
    dtype = info.input_type(i).dtype
    return None if dtype is None else dtype.name


def input_dtypes(**allowed: Collection[str]) -> Check:
    """A check on named positions: ``input_dtypes(i0=FLOATS, i1=INTS)``; absent inputs pass."""
    table = {int(k[1:]): frozenset(v) for k, v in allowed.items()}

    def check(info: NodeInfo) -> str | None:
        for i, names in table.items():
            if i >= info.n_inputs or not info.node.inputs[i]:
                continue
            name = dtype_name(info, i)
            if name not in names:
                return f"input {i} is {name}; kernel takes {', '.join(sorted(names))}"
        return None

    return check


def attr_in(name: str, allowed: Collection[Any], default: Any) -> Check:
    """A check that attribute ``name`` (``default`` when absent) is one of ``allowed``."""

    def check(info: NodeInfo) -> str | None:
        value = info.attrs.get(name, default)
        if value not in allowed:
            return f"{name}={value!r} is not implemented (takes {sorted(allowed)})"
        return None

    return check


def all_checks(*checks: Check) -> Check:
    """A check that runs ``checks`` in order and returns the first refusal."""

    def check(info: NodeInfo) -> str | None:
        for c in checks:
            reason = c(info)
            if reason:
                return reason
        return None

    return check


def factory(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[[NodeInfo], Any]]:
    """Declare a kernel factory ``fn(info, attrs)``; ``attrs`` has ``defaults`` filled in.

    The defaults are kept on the factory (``.defaults``), where the schema test reads them.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[[NodeInfo], Any]:
        @functools.wraps(fn)
        def build(info: NodeInfo) -> Any:
            return fn(info, {**defaults, **info.attrs})

        build.defaults = defaults  # type: ignore[attr-defined]
        return build

    return decorate


def checked_indices(index: Any, size: int, what: str, dimension: str | None = None) -> np.ndarray:
    """``index`` as int64 with negative entries counted from the end; an entry outside
    [-size, size) is refused by value: "``what`` index 9 is out of range for ``dimension``"
    (by default "a dimension of ``size``")."""
    index = np.asarray(index, dtype=np.int64)
    if not index.size:
        return index
    low = index.min()
    if low < -size or index.max() >= size:
        bad = index[(index < -size) | (index >= size)].flat[0]
        where = dimension or f"a dimension of {size}"
        raise IndexError(f"{what} index {int(bad)} is out of range for {where}")
    return np.where(index < 0, index + size, index) if low < 0 else index


def quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with numpy's floating-point warnings off (inf/nan results are IEEE, as ORT)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return run


_local = threading.local()
#: Work arrays larger than this are allocated per call instead of cached.
SCRATCH_LIMIT = 1 << 28


def scratch(slot: int, shape: Sequence[int], dtype: Any) -> np.ndarray:
    """An uninitialised work array from a per-thread cache (one buffer per ``slot``).

    Kernels use it for temporaries they never return (padded inputs, im2col columns): a
    fresh large allocation costs a page fault per 4 KiB on every run. The array is valid
    until the next ``scratch(slot, ...)`` call in the same thread.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > SCRATCH_LIMIT:
        return np.empty(shape, dtype)
    buffers: dict[int, np.ndarray] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[slot] = np.empty(max(nbytes, 64), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


#: Outputs at least this large come from the recycling pool (smaller ones from malloc).
POOL_MIN_BYTES = 1 << 18
#: The pool keeps at most this many bytes of buffers.
POOL_MAX_BYTES = 1 << 29
_pool: list[np.ndarray] = []
_pool_lock = threading.Lock()


def fresh(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """An uninitialised array for a kernel's *output*, recycled when possible.

    Large outputs reuse the buffer of an earlier output that nothing references any more
    (every view of a buffer holds a reference to it, so its reference count says when it
    is free): a new large allocation costs a page fault per 4 KiB, on every run. Small
    arrays, and any request when the pool is full, are plain ``np.empty``.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOL_MIN_BYTES:
        return np.empty(shape, dtype)
    with _pool_lock:
        base = _take(nbytes)
    return base[:nbytes].view(dtype).reshape(shape)


def _take(nbytes: int) -> np.ndarray:
    """A free pooled buffer of nbytes to 2 * nbytes, else a new one (pooled if room)."""
    for i in range(len(_pool)):
        # 2 references: the pool's and getrefcount's argument; any more is a live view
        if nbytes <= _pool[i].nbytes <= 2 * nbytes and sys.getrefcount(_pool[i]) == 2:
            base = _pool.pop(i)
            _pool.append(base)  # most recently used last
            return base
    base = np.empty(nbytes, dtype=np.uint8)
    total = sum(b.nbytes for b in _pool) + nbytes
    i = 0
    while total > POOL_MAX_BYTES and i < len(_pool):  # drop free buffers, oldest first
        if sys.getrefcount(_pool[i]) == 2:
            total -= _pool.pop(i).nbytes
        else:
            i += 1
    if total <= POOL_MAX_BYTES:
        _pool.append(base)
    return base
