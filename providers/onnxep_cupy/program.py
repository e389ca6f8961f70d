"""A compiled segment: the :class:`~onnxep_cupy.compiler.Analysis` emitted as one Python function.

Each value is a local variable, deleted after its last use (so the CuPy memory pool reuses
it); host copies of integer constants and device copies of folded constants are bound once
into the function's namespace. The only run-time copies are the ones residency demands:
a host value read by a device kernel (uploaded), or a device value in a host-input position
(downloaded; this is a device sync).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep.graph import Node, NodeInfo
from onnxep.provider import bind_kernel
from onnxep.registry import is_multi_output
from onnxep_cupy import tensor
from onnxep_cupy._fused import run_spec
from onnxep_cupy.codegen import OPS, FusedKernelSpec, fuse_tree
from onnxep_cupy.compiler import Analysis, fusible, host_preferred

__all__ = ["SegmentProgram"]

_ids = itertools.count()


class _FusedCall:
    """Calls a fused spec; restores leading unit axes of baked-in constants if needed."""

    def __init__(self, spec: FusedKernelSpec, min_rank: int) -> None:
        self.spec, self.min_rank = spec, min_rank

    def __call__(self, *args: Any) -> Any:
        y = run_spec(self.spec, *args)
        if y.ndim < self.min_rank:
            y = y.reshape((1,) * (self.min_rank - y.ndim) + tuple(y.shape))
        return y


class _SameShapeSameFill:
    """ConstantOfShape whose result only this segment reads: filled again only when its
    (host) shape changes. Kernels never write into their inputs, so reuse is safe; models
    that build weights this way (the light_* models) then fill them once, not every run."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.key: bytes | None = None
        self.value: Any = None

    def __call__(self, shape: Any) -> Any:
        key = np.asarray(shape).tobytes()
        if key != self.key:
            self.value, self.key = self.fn(shape), key
        return self.value


class SegmentProgram:
    """A segment compiled for the CuPy provider; call it with the segment's inputs."""

    def __init__(
        self,
        analysis: Analysis,
        upload: Callable[[Any], Any],
        download: Callable[[Any], Any],
        context: Callable[[], Any],
    ) -> None:
        emitter = _Emitter(analysis, upload, download)
        self.source = emitter.emit()
        self.fused: list[FusedKernelSpec] = emitter.fused
        self.syncs = emitter.syncs  # device -> host copies per run (each one a device sync)
        self.uploads = emitter.uploads  # host -> device copies per run
        self.folded = list(analysis.folded)
        self.bn_folded = analysis.bn_folded
        self.kernel_steps = emitter.kernel_steps
        #: Positions of segment inputs read only on the host (the plan passes host values).
        self.host_inputs = emitter.host_inputs
        name = f"<onnxep-cupy-segment-{next(_ids)}>"
        exec(compile(self.source, name, "exec"), emitter.ns)
        self.run: Callable[..., tuple[Any, ...]] = emitter.ns["run"]
        self._context = context

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        with self._context():
            return self.run(*args)

    @property
    def graph_safe(self) -> str | None:
        """None when the segment can be captured in a CUDA graph, else why not."""
        if self.syncs or self.uploads:
            return f"{self.syncs} device->host and {self.uploads} host->device copies per run"
        return None


class _Emitter:
    def __init__(
        self, a: Analysis, upload: Callable[[Any], Any], download: Callable[[Any], Any]
    ) -> None:
        self.a = a
        self.upload = upload
        self.ns: dict[str, Any] = {"_H": download, "_D": upload}
        self.lines: list[str] = []
        self.var: dict[tuple[str, str], str] = {}  # (value, "host"|"dev") -> expression
        self.fused: list[FusedKernelSpec] = []
        self.syncs = self.uploads = self.kernel_steps = 0
        self.host_inputs: tuple[int, ...] = ()
        self.params = {name: f"a{i}" for i, name in enumerate(a.segment.inputs)}

    def _bind(self, prefix: str, obj: Any) -> str:
        name = f"{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    def value(self, name: str, where: str) -> str:
        """An expression for ``name`` on the ``host``, the ``dev``ice, or ``raw`` (where it is)."""
        if not name:
            return "None"
        if where == "raw":
            where = "host" if host_preferred(self.a, name) else "dev"
        key = (name, where)
        if key not in self.var:
            self.var[key] = self._make(name, where)
        return self.var[key]

    def _make(self, name: str, where: str) -> str:
        a = self.a
        if name in a.consts:
            if where == "host":
                return self._bind("c", a.consts[name])
            return self.params.get(name) or self._bind("c", self.upload(a.consts[name]))
        resident = "host" if name in a.host else "dev"
        source = self.params.get(name) or self.var.get((name, resident))
        assert source is not None, f"{name} is read before it is computed"
        if where == resident:
            return source
        target = f"w{len(self.lines)}"
        self.lines.append(f"{target} = {'_H' if where == 'host' else '_D'}({source})")
        if where == "host":
            self.syncs += 1
        else:
            self.uploads += 1
        return target

    def _fused_nodes(self) -> set[int]:
        roots = {n.index for n in self.a.nodes if _is_root(self.a, n)}
        return roots | {n.index for n in self.a.inlined.values()}

    def where(self, node: Node, i: int) -> str:
        """Where a node reads its input ``i``: ``host``, ``dev`` or ``raw`` (Shape's data)."""
        kernel = self.a.kernels[node.index]
        if kernel.fn is tensor.shape:
            return "raw"
        on_host = any(o in self.a.host for o in node.outputs if o)
        return "host" if on_host or i in kernel.host_inputs else "dev"

    def _host_params(self) -> set[str]:
        """Segment inputs read only on the host: the plan passes them without a copy."""
        uses: dict[str, set[str]] = {name: set() for name in self.params}
        fused = self._fused_nodes()
        for node in self.a.nodes:
            for i, x in enumerate((*node.inputs, *node.implicit_inputs)):
                if x not in uses:
                    continue
                w = "dev" if node.index in fused or i >= len(node.inputs) else self.where(node, i)
                if w != "raw":  # Shape reads only the shape: either side will do
                    uses[x].add(w)
        for x in self.a.segment.outputs:
            if x in uses:
                uses[x].add("dev")
        return {name for name, w in uses.items() if w <= {"host"}}

    def emit(self) -> str:
        host_params = self._host_params()
        self.host_inputs = tuple(
            i for i, name in enumerate(self.a.segment.inputs) if name in host_params
        )
        self.a.host.update(n for n in host_params if n not in self.a.consts)
        for node in self.a.nodes:
            if node.outputs[0] in self.a.inlined:
                continue
            if _is_root(self.a, node):
                self._emit_fused(node)
            else:
                self._emit_node(node)
        outs = [self.value(o, "raw") for o in self.a.segment.outputs]
        self.lines.append(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        self._insert_deletes()
        params = ", ".join(f"a{i}" for i in range(len(self.params)))
        return f"def run({params}):\n" + "\n".join("    " + line for line in self.lines) + "\n"

    def _emit_fused(self, root: Node) -> None:
        tree: dict[str, Node] = {}
        self._collect(root, tree)
        nodes = [root, *tree.values()]
        consts = {
            x: float(self.a.consts[x].reshape(-1)[0])
            for n in nodes
            for x in n.inputs
            if x in self.a.consts and self.a.consts[x].size == 1 and x not in tree
        }
        t = self.a.dtype(root.outputs[0])
        dtypes = {
            x: d.name
            for n in nodes
            for x in n.inputs
            if x
            and x not in consts
            and (d := self.a.dtype(x)) is not None
            and d != t
            and d != np.bool_
        }
        spec = fuse_tree(
            self.a.ew_node(root), {v: self.a.ew_node(n) for v, n in tree.items()}, consts, dtypes
        )
        baked = [self.a.consts[x].ndim for x in consts if x not in spec.inputs]
        fn = self._bind("f", _FusedCall(spec, max(baked, default=0)))
        args = [self.value(x, "dev") for x in spec.inputs]
        target = self._define(root.outputs[0])
        self.lines.append(f"{target} = {fn}({', '.join(args)})")
        self.fused.append(spec)
        self.kernel_steps += 1

    def _collect(self, node: Node, tree: dict[str, Node]) -> None:
        for x in node.inputs:
            if x in self.a.inlined and x not in tree:
                tree[x] = self.a.inlined[x]
                self._collect(self.a.inlined[x], tree)

    def _emit_node(self, node: Node) -> None:
        kernel = self.a.kernels[node.index]
        bound = bind_kernel(kernel, NodeInfo(node, self.a.segment.graph))
        if kernel.fn is tensor.constant_of_shape and node.outputs[0] not in self.a.segment.outputs:
            bound = _SameShapeSameFill(bound)
        fn = self._bind("k", bound)
        args = [self.value(x, self.where(node, i)) for i, x in enumerate(node.inputs)]
        args += [self.value(x, "dev") for x in node.implicit_inputs]
        call = f"{fn}({', '.join(args)})"
        self.kernel_steps += 1
        if not is_multi_output(node.key):
            self.lines.append(f"{self._define(node.outputs[0])} = {call}")
            return
        self.lines.append(f"_r = {call}")
        for i, out in enumerate(node.outputs):
            if out:
                self.lines.append(f"{self._define(out)} = _r[{i}]")
        self.lines.append("del _r")  # unread outputs (Mean, InvStdDev...) are freed now

    def _define(self, name: str) -> str:
        var = f"v{len(self.var)}"
        self.var[(name, "host" if name in self.a.host else "dev")] = var
        return var

    def _insert_deletes(self) -> None:
        """``del`` each local after the line that last reads it (returned values excepted)."""
        word = re.compile(r"\b([avw]\d+)\b")
        last: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            for name in word.findall(line):
                last[name] = i
        out: list[str] = []
        for i, line in enumerate(self.lines):
            out.append(line)
            dead = sorted(n for n, j in last.items() if j == i and not line.startswith("return"))
            if dead:
                out.append("del " + ", ".join(dead))
        self.lines = out


def _is_root(a: Analysis, node: Node) -> bool:
    """A node that computes a fused kernel's result (with its inlined producers)."""
    return node.outputs[0] not in a.inlined and fusible(a, node) and OPS[node.op_type].out == "f"
