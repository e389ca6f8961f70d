"""The numba provider's kernel registry and the small helpers its kernel modules share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.registry import KernelRegistry

__all__ = [
    "FLOATS",
    "INTS",
    "NUMERIC",
    "all_checks",
    "check_dtypes",
    "SCALARS",
    "check_static_rank",
    "contiguous",
    "f32",
    "frozen",
    "kernels",
    "only_outputs",
]

kernels = KernelRegistry()

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
NUMERIC = (*FLOATS, *INTS)
#: Every dtype the generated elementwise kernels handle (no float16: numba lacks its math).
SCALARS = (
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
)


def contiguous(x: object) -> np.ndarray:
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (``np.ascontiguousarray`` does not)."""
    a = np.asarray(x)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def frozen(value: object) -> object:
    """A folded constant, read-only like the model's initializers: the session hands a caller
    a copy of a read-only output, never the array the compiled segment returns every run."""
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


def f32(value: float) -> float:
    """A float attribute default as ONNX stores it (float32), e.g. 0.01 -> 0.009999999776."""
    return float(np.float32(value))


Check = Callable[[NodeInfo], "str | None"]


def all_checks(*checks: Check) -> Check:
    """A check that runs several and returns the first refusal."""

    def run(info: NodeInfo) -> str | None:
        for check in checks:
            reason = check(info)
            if reason:
                return reason
        return None

    return run


def check_dtypes(positions: Sequence[int], allowed: Sequence[str]) -> Check:
    """Refuse when an input at one of ``positions`` has a dtype outside ``allowed``."""

    def run(info: NodeInfo) -> str | None:
        for i in positions:
            if i >= info.n_inputs or not info.node.inputs[i]:
                continue
            dtype = info.input_type(i).dtype
            if dtype is None:
                return f"input {i} has an unknown dtype"
            if dtype.name not in allowed:
                return f"input {i} is {dtype.name}; kernel takes {', '.join(allowed)}"
        return None

    return run


def only_outputs(count: int) -> Check:
    """Refuse nodes whose outputs past the first ``count`` are read (e.g. MaxPool indices).

    An extra output that nothing reads (and that is no graph output) is fine: it is not made.
    """

    def run(info: NodeInfo) -> str | None:
        extra = [o for o in info.node.outputs[count:] if o]
        if not extra:
            return None
        graph = info.graph
        read = {x for n in graph.nodes for x in (*n.inputs, *n.implicit_inputs)}
        used = [o for o in extra if o in read or o in graph.outputs]
        if used:
            return f"optional output {used[0]!r} is not implemented"
        return None

    return run


def check_static_rank(position: int, ranks: Sequence[int]) -> Check:
    """Refuse unless input ``position`` has a known rank among ``ranks``."""

    def run(info: NodeInfo) -> str | None:
        rank = info.input_type(position).rank
        if rank is None:
            return f"input {position} has an unknown rank"
        if rank not in ranks:
            return (
                f"input {position} has rank {rank}; kernel takes rank {'/'.join(map(str, ranks))}"
            )
        return None

    return run
