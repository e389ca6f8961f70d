"""``NumbaProvider.compile``: a segment becomes one generated Python function.

Passes, in order:

1. every node becomes an :class:`Op` (elementwise ops keep their spec, others a bound kernel);
2. constant folding: ops whose inputs are all constants run once, now;
3. rewrites (:mod:`onnxep_numba._fold`): BatchNormalization and per-channel Mul/Add folded
   into a preceding Conv's weights, Relu/LeakyRelu/Clip/Sigmoid into its epilogue, the
   remaining BatchNormalizations into elementwise affine ops;
4. elementwise grouping: connected elementwise ops become one fused kernel, as long as the
   group stays convex (no path leaves it and comes back);
5. emission: straight-line code over local variables, each deleted after its last use.

Initializers that are also graph inputs may be fed by the user; the function checks they
are the initializer objects it folded, and otherwise runs an unfolded build of the segment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import Node, NodeInfo
from onnxep.provider import Provider, Segment, bind_kernel
from onnxep.registry import Kernel, is_multi_output
from onnxep_numba._ewops import EwSpec
from onnxep_numba._registry import frozen
from onnxep_numba.fusion import FNode, Program, fused_kernel

__all__ = ["Op", "compile_segment"]


@dataclasses.dataclass(eq=False)
class Op:
    """One step before emission: an elementwise op (``spec``) or a callable (``fn``)."""

    label: str
    inputs: list[str]
    outputs: list[str]
    spec: EwSpec | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dtype: str | None = None  # output dtype of an elementwise op
    fn: Callable[..., Any] | None = None
    multi: bool = False  # fn returns a tuple
    fused: bool = False  # a fused elementwise group (returns exactly its outputs)
    node: Node | None = None
    info: NodeInfo | None = None
    kernel: Kernel | None = None


class _Names:
    """Fresh names for values the compiler creates (folded weights)."""

    def __init__(self, segment: Segment) -> None:
        self.prefix = f"__numba{segment.index}_"
        self.count = 0

    def __call__(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}_{hint}"


def compile_segment(
    segment: Segment, provider: Provider, *, fuse: bool = True, threads: int | None = None
) -> Callable[..., tuple[Any, ...]]:
    """The segment as one callable ``f(*segment.inputs) -> segment.outputs``."""
    ops = [_op(provider, segment.info(n)) for n in segment.nodes]
    graph = segment.graph
    fixed = {
        n: graph.initializers[n]
        for n in segment.inputs
        if n in graph.initializers and n not in graph.inputs
    }
    guarded = {
        n: graph.initializers[n]
        for n in segment.inputs
        if n in graph.initializers and n in graph.inputs
    }
    if not fuse:
        return _emit(segment, ops, {}, {}, threads, None)
    consts = {**fixed, **guarded}
    ops = _fold_constants(ops, consts)
    from onnxep_numba._fold import rewrite

    ops = rewrite(ops, consts, set(segment.outputs), _Names(segment))
    steps = _fuse(ops, consts, set(segment.outputs))
    slow = None
    if guarded:
        slow = _Lazy(lambda: compile_segment(segment, provider, fuse=False, threads=threads))
    return _emit(segment, steps, consts, guarded, threads, slow)


def _op(provider: Provider, info: NodeInfo) -> Op:
    node = info.node
    kernel = provider.kernel_for(info)
    if kernel is None:
        raise LookupError(f"no numba kernel for {node.key}")
    spec = getattr(kernel.fn, "ew_spec", None)
    op = Op(node.label, list(node.inputs), list(node.outputs), node=node, info=info, kernel=kernel)
    if spec is not None and not kernel.factory:
        op.spec = spec
        op.attrs = {k: node.attrs.get(k, v) for k, v in spec.attrs.items()}
        dtypes = [info.input_type(i).dtype for i in range(info.n_inputs) if node.inputs[i]]
        names = [d.name for d in dtypes if d is not None]
        declared = info.output_type(0).dtype
        op.dtype = declared.name if declared is not None else spec.out_dtype(names, op.attrs)
        return op
    op.fn = bind_kernel(kernel, info)
    op.attrs = dict(node.attrs)
    op.multi = is_multi_output(node.key)
    return op


def run_op(op: Op, args: Sequence[Any]) -> tuple[Any, ...]:
    """Run one op now (constant folding); returns all its outputs."""
    if op.spec is not None:
        present = [a for a in args if a is not None]
        dtypes = [None if a is None else np.asarray(a).dtype.name for a in args]
        while dtypes and dtypes[-1] is None:
            dtypes.pop()
        from onnxep_numba.fusion import single_op

        return fused_kernel(single_op(op.spec, dtypes, op.attrs))(*present)
    assert op.fn is not None
    result = op.fn(*args)
    return tuple(result) if op.multi else (result,)


def _fold_constants(ops: list[Op], consts: dict[str, Any]) -> list[Op]:
    kept: list[Op] = []
    for op in ops:
        if all(not x or x in consts for x in op.inputs):
            results = run_op(op, [consts[x] if x else None for x in op.inputs])
            for name, value in zip(op.outputs, results):
                if name:
                    consts[name] = frozen(value)
        else:
            kept.append(op)
    return kept


# --- elementwise grouping -----------------------------------------------------------------


def _fuse(ops: list[Op], consts: dict[str, Any], seg_outputs: set[str]) -> list[Op]:
    """Merge connected elementwise ops into convex groups; return the new op list."""
    producer = {o: i for i, op in enumerate(ops) for o in op.outputs if o}
    root = list(range(len(ops)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(ops))}
    anc: list[int] = []  # for each op, a bitmask of the ops it depends on (transitively)
    for i, op in enumerate(ops):
        direct = {producer[x] for x in op.inputs if x in producer}
        mask = 0
        for p in direct:
            mask |= anc[p] | (1 << p)
        anc.append(mask)
        if op.spec is None:
            continue
        for g in sorted({root[p] for p in direct if ops[p].spec is not None}, reverse=True):
            gi = root[i]
            if g != gi and _convex(members[gi] + members[g], ops, producer, anc):
                for m in members[gi]:
                    root[m] = g
                members[g] += members.pop(gi)
    groups = [sorted(m) for m in members.values()]
    result = []
    for group in _topological(groups, ops, producer, root):
        if ops[group[0]].spec is None:
            result.append(ops[group[0]])
        else:
            result.append(_group_op([ops[m] for m in group], ops, consts, seg_outputs))
    return result


def _convex(merged: list[int], ops: list[Op], producer: dict[str, int], anc: list[int]) -> bool:
    """No input of the group is computed from the group through an op outside it."""
    mask = 0
    for m in merged:
        mask |= 1 << m
    for m in merged:
        for x in ops[m].inputs:
            q = producer.get(x)
            if q is not None and not (mask >> q) & 1 and anc[q] & mask:
                return False
    return True


def _topological(
    groups: list[list[int]], ops: list[Op], producer: dict[str, int], root: list[int]
) -> list[list[int]]:
    """Groups in an order where each runs after the groups it reads from."""
    by_root = {root[g[0]]: g for g in groups}
    needs = {
        r: {root[producer[x]] for m in g for x in ops[m].inputs if x in producer} - {r}
        for r, g in by_root.items()
    }
    done: set[int] = set()
    order: list[list[int]] = []
    pending = sorted(by_root, key=lambda r: min(by_root[r]))
    while pending:
        waiting = []
        for r in pending:
            if needs[r] <= done:
                done.add(r)
                order.append(by_root[r])
            else:
                waiting.append(r)
        if len(waiting) == len(pending):
            raise AssertionError("fused groups form a cycle")
        pending = waiting
    return order


def _group_op(
    members: list[Op], all_ops: list[Op], consts: dict[str, Any], seg_outputs: set[str]
) -> Op:
    inside = {o: k for k, op in enumerate(members) for o in op.outputs if o}
    member_ids = {id(m) for m in members}
    read_outside = {x for op in all_ops if id(op) not in member_ids for x in op.inputs}
    ext: list[str] = []
    nodes: list[FNode] = []
    for op in members:
        args: list[tuple[str, int] | None] = []
        for x in op.inputs:
            if not x:
                args.append(None)
            elif x in inside:
                args.append(("t", inside[x]))
            else:
                if x not in ext:
                    ext.append(x)
                args.append(("x", ext.index(x)))
        while args and args[-1] is None:
            args.pop()
        assert op.spec is not None and op.dtype is not None
        nodes.append(FNode(op.spec, tuple(sorted(op.attrs.items())), tuple(args), op.dtype))
    outs = [k for k, op in enumerate(members) if op.outputs[0] in read_outside | seg_outputs]
    dtypes = tuple(_dtype_of(x, consts, members, inside, ext) for x in ext)
    program = Program(dtypes, tuple(nodes), tuple(outs))
    label = "+".join(m.label for m in members[:3]) + ("..." if len(members) > 3 else "")
    return Op(
        f"fused[{len(members)}]({label})",
        ext,
        [members[k].outputs[0] for k in outs],
        fn=fused_kernel(program),
        multi=True,
        fused=True,
    )


def _dtype_of(
    name: str, consts: dict[str, Any], members: list[Op], inside: dict[str, int], ext: list[str]
) -> str:
    if name in consts:
        return np.asarray(consts[name]).dtype.name
    for op in members:
        if name in op.inputs and op.info is not None:
            dtype = op.info.graph.type_of(name).dtype
            if dtype is not None:
                return dtype.name
    raise ValueError(f"unknown dtype of {name!r}")


# --- emission ---------------------------------------------------------------------------


class _Lazy:
    """Builds a fallback callable on first use."""

    def __init__(self, build: Callable[[], Callable[..., Any]]) -> None:
        self.build = build
        self.fn: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.fn is None:
            self.fn = self.build()
        return self.fn(*args)


def _emit(
    segment: Segment,
    ops: list[Op],
    consts: dict[str, Any],
    guards: dict[str, Any],
    threads: int | None,
    slow: Callable[..., Any] | None,
) -> Callable[..., tuple[Any, ...]]:
    ns: dict[str, Any] = {}
    params = [f"a{i}" for i in range(len(segment.inputs))]
    var: dict[str, str] = dict(zip(segment.inputs, params))
    lines = _guard_lines(guards, var, params, ns, slow)
    if threads:
        import numba

        ns["_threads"] = numba.set_num_threads
        lines.append(f"_threads({threads})")
    needed = {x for op in ops for x in op.inputs} | set(segment.outputs)
    for name in needed:
        if name in consts and (name not in var or name in guards):
            var[name] = f"c{len(ns)}"
            ns[var[name]] = consts[name]
    for k, op in enumerate(ops):
        ns[f"f{k}"] = op.fn if op.spec is None else _single(op)
        call = f"f{k}({', '.join(var[x] if x else 'None' for x in op.inputs)})"
        named = [(j, o) for j, o in enumerate(op.outputs) if o in needed]
        for j, o in named:
            var[o] = f"v{k}_{j}"
        if not (op.multi and op.spec is None):
            lines.append(f"{var[op.outputs[0]] if named else '_'} = {call}")
        elif not named:
            lines.append(call)
        elif op.fused and len(named) == len(op.outputs):
            lines.append(f"{', '.join(var[o] for _, o in named)}, = {call}")
        else:
            lines.append(f"_r = {call}")
            lines.extend(f"{var[o]} = _r[{j}]" for j, o in named)
    result = ", ".join(var[o] for o in segment.outputs)
    lines.append(f"return ({result}{',' if len(segment.outputs) == 1 else ''})")
    body = "\n".join("    " + line for line in _deletes(lines))
    source = f"def segment({', '.join(params)}):\n{body}\n"
    exec(compile(source, f"<onnxep-numba-segment-{segment.index}>", "exec"), ns)
    fn = ns["segment"]
    fn.source = source
    return fn


def _guard_lines(
    guards: dict[str, Any],
    var: dict[str, str],
    params: list[str],
    ns: dict[str, Any],
    slow: Callable[..., Any] | None,
) -> list[str]:
    """Fed values replacing folded initializers: run the unfolded build instead."""
    if not guards:
        return []
    ns["_slow"] = slow
    for k, array in enumerate(guards.values()):
        ns[f"g{k}"] = array
    checks = " or ".join(f"{var[n]} is not g{k}" for k, n in enumerate(guards))
    return [f"if {checks}:", f"    return _slow({', '.join(params)})"]


def _single(op: Op) -> Callable[..., Any]:
    """An unfused elementwise op (fusion off) as a callable returning one array."""

    def run(*args: Any) -> Any:
        return run_op(op, args)[0]

    return run


def _deletes(lines: list[str]) -> list[str]:
    """``del`` each ``v`` variable after the line that last reads it."""
    word = re.compile(r"\bv\d+_\d+\b")
    last: dict[str, int] = {}
    for i, line in enumerate(lines):
        for v in word.findall(line):
            last[v] = i
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        dead = sorted(v for v, j in last.items() if j == i and not line.startswith("return"))
        if dead:
            out.append("del " + ", ".join(dead))
    return out
