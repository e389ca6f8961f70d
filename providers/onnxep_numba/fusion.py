"""Fused elementwise kernels: a tree (or DAG) of elementwise ops as ONE generated numba loop.

A :class:`Program` lists the external inputs' dtypes, the ops in topological order (each
reading external inputs or earlier ops) and the ops whose values must be written out. It
is compiled to a ``@njit(parallel=True)`` loop over the output elements; intermediate
values live in registers, never in arrays.

Broadcasting is resolved per call: the output shape's dims are coalesced (adjacent dims
where every input either broadcasts or not), so each input is addressed by one stride per
coalesced dim. The generated code depends only on which inputs broadcast along the last
coalesced dim (they are loaded once per row); ranks and sizes are runtime values, so one
kernel serves every shape of the same op tree and dtypes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxep_numba._ewops import Emitter, EwSpec
from onnxep_numba._jit import OPTIONS, load_generated
from onnxep_numba._registry import contiguous

__all__ = ["FNode", "FusedKernel", "Program", "fused_kernel", "single_op"]

#: Elements per parallel task along the last dim.
CHUNK = 8192
#: Smaller outputs run a serial variant of the loop.
SERIAL_BELOW = 16384


@dataclasses.dataclass(frozen=True)
class FNode:
    """One op of a program; ``args`` are ("x", k) external inputs, ("t", j) ops, or None."""

    spec: EwSpec
    attrs: tuple[tuple[str, Any], ...]
    args: tuple[tuple[str, int] | None, ...]
    dtype: str

    def key(self) -> tuple[Any, ...]:
        """A hashable identity (specs compare by name)."""
        attrs = tuple((k, _hashable(v)) for k, v in self.attrs)
        return (self.spec.name, attrs, self.args, self.dtype)


@dataclasses.dataclass(frozen=True)
class Program:
    """An elementwise DAG: external input dtypes, ops, and which ops are written out."""

    inputs: tuple[str, ...]
    nodes: tuple[FNode, ...]
    outputs: tuple[int, ...]

    def key(self) -> tuple[Any, ...]:
        """A hashable identity of the program (op tree, attributes, dtypes)."""
        return (self.inputs, tuple(n.key() for n in self.nodes), self.outputs)


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    return value


def single_op(spec: EwSpec, dtypes: Sequence[str | None], attrs: Mapping[str, Any]) -> Program:
    """The program of one op; ``None`` in ``dtypes`` marks a missing optional input."""
    present = [d for d in dtypes if d is not None]
    args: list[tuple[str, int] | None] = []
    k = 0
    for d in dtypes:
        args.append(None if d is None else ("x", k))
        k += d is not None
    full = {**spec.attrs, **attrs}
    out = spec.out_dtype(list(present), full)
    node = FNode(spec, tuple(sorted(full.items())), tuple(args), out)
    return Program(tuple(present), (node,), (0,))


# --- code generation --------------------------------------------------------------------


def generate(program: Program, bcast_last: tuple[bool, ...], parallel: bool = True) -> str:
    """The Python source of a module defining ``kernel`` for one broadcast variant.

    ``parallel=False`` gives the variant for small tensors, where waking threads would cost
    more than the loop (it also compiles in a third of the time).
    """
    e = Emitter()
    body = _body(program, e)
    n_in, n_out = len(program.inputs), len(program.outputs)
    params = [*(f"x{k}" for k in range(n_in)), *(f"o{m}" for m in range(n_out)), "dims", "st"]
    loop = "numba.prange(n_outer * nch)" if parallel else "range(n_outer * nch)"
    lines = [
        "import math",
        "import numba",
        "import numpy as np",
        *e.const_lines(),
        "",
        f"@numba.njit(parallel={parallel}, cache=True, error_model={OPTIONS['error_model']!r}, "
        "fastmath=False, nogil=True)",
        f"def kernel({', '.join(params)}, ch):",
        "    r = dims.shape[0]",
        "    last = dims[r - 1]",
        "    n_outer = 1",
        "    for d in range(r - 1):",
        "        n_outer *= dims[d]",
        "    nch = (last + ch - 1) // ch",
        f"    for task in {loop}:",
        "        row = task // nch",
        "        j0 = (task - row * nch) * ch",
        "        j1 = min(j0 + ch, last)",
        "        rem = row",
        *[f"        b{k} = 0" for k in range(n_in)],
        "        for d in range(r - 2, -1, -1):",
        "            q = rem // dims[d]",
        "            i = rem - q * dims[d]",
        "            rem = q",
        *[f"            b{k} += i * st[{k}, d]" for k in range(n_in)],
        "        ob = row * last",
        *[f"        v{k} = x{k}[b{k}]" for k in range(n_in) if bcast_last[k]],
        "        for j in range(j0, j1):",
        *[
            f"            v{k} = x{k}[numba.uint64(b{k} + j)]"
            for k in range(n_in)
            if not bcast_last[k]
        ],
        *[f"            {line}" for line in body],
        *[f"            o{m}[numba.uint64(ob + j)] = t{o}" for m, o in enumerate(program.outputs)],
    ]
    return "\n".join(lines) + "\n"


def _body(program: Program, e: Emitter) -> list[str]:
    """The statements computing every op of the program for one element (``t0``, ``t1``...)."""
    body: list[str] = []
    for j, node in enumerate(program.nodes):
        e.dtype = node.dtype
        e.lines = []
        args = [
            None if a is None else (f"v{a[1]}" if a[0] == "x" else f"t{a[1]}") for a in node.args
        ]
        expr = node.spec.template(e, args, dict(node.attrs))
        body.extend(e.lines)
        cast = f"np.{node.dtype}" if node.dtype != "bool" else "bool"
        body.append(f"t{j} = {cast}({expr})")
    return body


# --- runtime ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layout:
    out_shape: tuple[int, ...]
    size: int
    dims: np.ndarray
    strides: np.ndarray
    variant: tuple[bool, ...]
    fusable: bool  # every written-out op has the full output shape


class FusedKernel:
    """A compiled program: ``kernel(*inputs) -> tuple of outputs`` (numpy arrays)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._variants: dict[tuple[bool, ...], Any] = {}
        self._layouts: dict[tuple[tuple[int, ...], ...], _Layout] = {}
        self._support = _support(program)
        self._lock = threading.Lock()

    def __call__(self, *inputs: Any) -> tuple[np.ndarray, ...]:
        arrays = [contiguous(x) for x in inputs]
        shapes = tuple(a.shape for a in arrays)
        layout = self._layouts.get(shapes)
        if layout is None:
            layout = self._layout(shapes)
            self._layouts[shapes] = layout
        dtypes = [self.program.nodes[o].dtype for o in self.program.outputs]
        if not layout.fusable:
            return _unfused(self.program, arrays)
        outs = [np.empty(layout.out_shape, dtype=d) for d in dtypes]
        if layout.size:
            fn = self._variant((*layout.variant, layout.size >= SERIAL_BELOW))
            flat = [a.reshape(-1) for a in arrays]
            fn(*flat, *[o.reshape(-1) for o in outs], layout.dims, layout.strides, CHUNK)
        return tuple(outs)

    def _variant(self, variant: tuple[bool, ...]) -> Any:
        fn = self._variants.get(variant)
        if fn is None:
            with self._lock:
                fn = self._variants.get(variant)
                if fn is None:
                    source = generate(self.program, variant[:-1], parallel=variant[-1])
                    fn = load_generated(source, "kernel")
                    self._variants[variant] = fn
        return fn

    def _layout(self, shapes: tuple[tuple[int, ...], ...]) -> _Layout:
        try:
            out_shape = tuple(np.broadcast_shapes(*shapes))
        except ValueError:  # inputs of different ops that never meet: no common loop
            empty = np.zeros(0, np.int64)
            return _Layout((), 0, empty, empty.reshape(0, 0), (), False)
        fusable = all(
            tuple(np.broadcast_shapes(*[shapes[k] for k in self._support[o]])) == out_shape
            for o in self.program.outputs
        )
        dims, flags = coalesce(shapes, out_shape)
        strides = np.zeros((max(len(shapes), 1), len(dims)), dtype=np.int64)
        for k in range(len(shapes)):
            step = 1
            for d in range(len(dims) - 1, -1, -1):
                if not flags[d][k]:
                    strides[k, d] = step
                    step *= dims[d]
        size = int(np.prod(out_shape, dtype=np.int64))
        variant = tuple(flags[-1]) if flags else ()
        return _Layout(out_shape, size, np.array(dims, np.int64), strides, variant, fusable)


def coalesce(
    shapes: Sequence[tuple[int, ...]], out_shape: tuple[int, ...]
) -> tuple[list[int], list[tuple[bool, ...]]]:
    """Merged output dims and, per dim, which inputs broadcast along it."""
    rank = len(out_shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    dims: list[int] = []
    flags: list[tuple[bool, ...]] = []
    for d in range(rank):
        if out_shape[d] == 1:
            continue
        f = tuple(p[d] == 1 for p in padded)
        if dims and flags[-1] == f:
            dims[-1] *= out_shape[d]
        else:
            dims.append(out_shape[d])
            flags.append(f)
    if not dims:
        return [1], [tuple(False for _ in shapes)]
    return dims, flags


def _support(program: Program) -> list[set[int]]:
    """For each op, the external inputs it depends on (its shape is their broadcast)."""
    support: list[set[int]] = []
    for node in program.nodes:
        s: set[int] = set()
        for a in node.args:
            if a is not None:
                s |= {a[1]} if a[0] == "x" else support[a[1]]
        support.append(s)
    return support


def _unfused(program: Program, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Run the ops one by one (an output that is smaller than the fused loop's domain)."""
    values: list[np.ndarray] = []
    for node in program.nodes:
        args = [
            None if a is None else (arrays[a[1]] if a[0] == "x" else values[a[1]])
            for a in node.args
        ]
        dtypes = [None if x is None else x.dtype.name for x in args]
        single = fused_kernel(single_op(node.spec, dtypes, dict(node.attrs)))
        values.append(single(*[x for x in args if x is not None])[0])
    return tuple(values[o] for o in program.outputs)


_kernels: dict[tuple[Any, ...], FusedKernel] = {}
_kernels_lock = threading.Lock()


def fused_kernel(program: Program) -> FusedKernel:
    """The (process-wide, shared) compiled kernel of a program."""
    key = program.key()
    kernel = _kernels.get(key)
    if kernel is None:
        with _kernels_lock:
            kernel = _kernels.setdefault(key, FusedKernel(program))
    return kernel
