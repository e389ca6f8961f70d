"""Code generation: a partitioned graph becomes one straight-line Python function.

Each value lives in a local variable of the generated function (no dict lookups per node),
is deleted after its last use, and crosses devices at most once per target device. Kernel
attributes are bound when the code is generated. A failing kernel is traced back to its node
through the generated line it ran on, at no cost to runs that do not fail.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

from onnxep.device_values import host_value
from onnxep.graph import Graph, Node, NodeInfo
from onnxep.partition import Partition
from onnxep.provider import Provider, Segment, bind_kernel
from onnxep.registry import Kernel, is_multi_output

__all__ = ["HOST", "BuildFailure", "Emitter", "Plan", "StepInfo", "TransferInfo", "TransferStats"]

HOST = "cpu"
_plan_ids = itertools.count()


@dataclasses.dataclass
class TransferStats:
    """Copies between devices, counted per run (reset by the session before each run)."""

    count: int = 0
    bytes: int = 0

    def record(self, value: Any, source: Any = None) -> None:
        """Count one copy of ``value`` (none when a transfer returned its ``source`` itself)."""
        if value is source:
            return
        self.count += 1
        self.bytes += int(getattr(value, "nbytes", 0))


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What one generated line does: a node, a compiled segment, or a transfer."""

    kind: str  # "node" | "segment" | "transfer"
    segment: Segment | None
    node: Node | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class TransferInfo:
    """One planned copy: a value to a device, at run time or once at build time."""

    value: str
    source: str
    target: str
    constant: bool
    nbytes: int = 0


class Plan:
    """A compiled graph: call :meth:`run` with the graph's inputs in order."""

    def __init__(
        self,
        graph: Graph,
        parts: Partition,
        inputs: tuple[str, ...],
        source: str,
        namespace: dict[str, Any],
        steps: dict[int, StepInfo],
        transfers: list[TransferInfo],
        stats: TransferStats,
    ) -> None:
        self.graph = graph
        self.partition = parts
        self.inputs = inputs
        self.outputs = graph.outputs
        self.source = source
        self.steps = steps
        self.transfers = transfers
        self.stats = stats
        self._filename = f"<onnxep-plan-{next(_plan_ids)}>"
        exec(compile(source, self._filename, "exec"), namespace)  # our own generated code
        self.run: Callable[..., tuple[Any, ...]] = namespace["run"]
        self._namespace = namespace

    def failing_step(self, exc: BaseException) -> StepInfo | None:
        """The step a run was executing when ``exc`` was raised, from the traceback."""
        tb = exc.__traceback__
        found = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self._filename:
                found = self.steps.get(tb.tb_lineno)
            tb = tb.tb_next
        return found


class BuildFailure(Exception):
    """A provider failed while compiling or binding a segment."""

    def __init__(self, segment: Segment, error: BaseException, node: Node | None = None) -> None:
        super().__init__(str(error))
        self.segment = segment
        self.error = error
        self.node = node  # the node that failed to bind, when one did


class Emitter:
    """Writes the generated function for one plan."""

    def __init__(
        self,
        graph: Graph,
        parts: Partition,
        providers: Sequence[Provider],
        profiler: Any,
        outputs_on_device: bool = False,
        device_feeds: bool = False,
        prepare_node: Callable[[Node], Node] = lambda node: node,
    ) -> None:
        self.graph = graph
        self.prepare_node = prepare_node  # e.g. compiles If/Loop/Scan bodies into attributes
        self.outputs_on_device = outputs_on_device
        self.device_feeds = device_feeds
        self.feeds: dict[str, str] = {}  # graph input -> its parameter, as fed
        self.host_feeds: dict[str, str] = {}  # graph input -> variable holding it on the host
        self.parts = parts
        self.providers = providers
        self.profiler = profiler
        self.lines: list[str] = []
        self.steps: dict[int, StepInfo] = {}
        self.ns: dict[str, Any] = {}
        self.var: dict[tuple[str, str], str] = {}  # (value, device) -> variable
        self.home: dict[str, str] = {}  # value -> device it is produced on
        self.owner: dict[str, Provider] = {}  # value -> provider that produced it
        self.fresh: set[str] = set()  # values a fresh_output kernel allocated (host only)
        self.readers = {name: len(nodes) for name, nodes in graph.consumers().items()}
        self.transfers: list[TransferInfo] = []
        self.stats = TransferStats()
        self.ns["_stats"] = self.stats
        self.inputs = (*graph.inputs, *graph.outer_names)

    # --- names ------------------------------------------------------------------------
    def _fresh(self, prefix: str, obj: Any = None) -> str:
        name = f"{prefix}{len(self.ns)}"
        if obj is not None:
            self.ns[name] = obj
        return name

    def _line(self, code: str, step: StepInfo | None = None) -> None:
        self.lines.append("    " + code)
        if step is not None:
            self.steps[len(self.lines) + 1] = step  # +1: the "def" line comes first

    # --- values -----------------------------------------------------------------------
    def _value(self, name: str, device: str, segment: Segment | None) -> str:
        """The variable holding ``name`` on ``device``, emitting a copy if needed."""
        if not name:
            return "None"
        if device == HOST and self.device_feeds and name in self.feeds:
            return self._host_feed(name, segment)
        if (name, device) in self.var:
            return self.var[(name, device)]
        home = self.home[name]
        source = self.var[(name, home)]
        if device == HOST:
            provider = self.owner[name]
            self._copy(name, source, provider.to_host, home, device, segment)
        else:
            assert segment is not None, "only segments ask for values on a device"
            host = self.feeds.get(name) or self._value(name, HOST, segment)
            self._copy(name, host, segment.provider.to_device, HOST, device, segment)
        return self.var[(name, device)]

    def _copy(
        self,
        name: str,
        source: str,
        fn: Callable[[Any], Any],
        src: str,
        dst: str,
        seg: Segment | None,
    ) -> None:
        if name in self.graph.initializers and name not in self.graph.inputs:
            array = fn(self.graph.initializers[name])  # uploaded once, at build time
            self.var[(name, dst)] = self._fresh("c", array)
            self.transfers.append(TransferInfo(name, src, dst, True, _nbytes(array)))
            return
        if name in self.graph.initializers and dst != HOST:
            self._upload_overridable(name, source, fn, src, dst, seg)
            return
        target = self._fresh("x")
        fn_name = self._fresh("t", fn)
        self.var[(name, dst)] = target
        nbytes = _nbytes(self.graph.initializers.get(name))
        self.transfers.append(TransferInfo(name, src, dst, False, nbytes))
        info = StepInfo("transfer", seg, None, f"{name}: {src} -> {dst}")
        self._line(f"{target} = {fn_name}({source}); _stats.record({target}, {source})", info)

    def _upload_overridable(
        self,
        name: str,
        source: str,
        fn: Callable[[Any], Any],
        src: str,
        dst: str,
        seg: Segment | None,
    ) -> None:
        """An initializer that may be fed: uploaded once, copied again only when fed."""
        initial = self.graph.initializers[name]
        device_copy = self._fresh("c", fn(initial))
        host_copy = self._fresh("c", initial)
        target, fn_name = self._fresh("x"), self._fresh("t", fn)
        self.var[(name, dst)] = target
        self.transfers.append(TransferInfo(name, src, dst, True, _nbytes(initial)))
        info = StepInfo("transfer", seg, None, f"{name}: {src} -> {dst} (if fed)")
        self._line(
            f"{target} = {device_copy} if {source} is {host_copy} else {fn_name}({source}); "
            f"_stats.record({target}, {device_copy})",
            info,
        )

    def _host_feed(self, name: str, segment: Segment | None) -> str:
        """A feed read on the host: a device array (CuPy, DLPack) is copied, numpy passes."""
        if name not in self.host_feeds:
            target = self._fresh("x")
            fn_name = self._fresh("t", host_value)
            info = StepInfo("transfer", segment, None, f"{name}: device feed -> cpu")
            self._line(f"{target} = {fn_name}({self.feeds[name]}, _stats)", info)
            self.host_feeds[name] = target
        return self.host_feeds[name]

    # --- emission ---------------------------------------------------------------------
    def emit(self) -> Plan:
        for i, name in enumerate(self.inputs):
            self.var[(name, HOST)] = self.feeds[name] = f"a{i}"
            self.home[name] = HOST
        for name, array in self.graph.initializers.items():
            if (name, HOST) not in self.var:  # a fed (overridable) initializer stays an input
                self.var[(name, HOST)] = self._fresh("c", array)
                self.home[name] = HOST
        for segment in self.parts.segments:
            self._emit_segment(segment)
        if self.outputs_on_device:  # io_binding: each output stays where it was produced
            outs = [self.var[(o, self.home[o])] for o in self.graph.outputs]
        else:
            outs = [self._value(o, HOST, None) for o in self.graph.outputs]
        self._line(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        self._insert_deletes()
        params = ", ".join(f"a{i}" for i in range(len(self.inputs)))
        source = f"def run({params}):\n" + "\n".join(self.lines) + "\n"
        return Plan(
            self.graph,
            self.parts,
            self.inputs,
            source,
            self.ns,
            self.steps,
            self.transfers,
            self.stats,
        )

    def _emit_segment(self, segment: Segment) -> None:
        provider = segment.provider
        try:
            compiled = provider.compile(segment)
        except Exception as exc:
            raise BuildFailure(segment, exc) from exc
        if compiled is None:
            for node in segment.nodes:
                self._emit_node(segment, node)
            return
        host_args = set(getattr(compiled, "host_inputs", ()))  # inputs it reads on the host
        args = [
            self._value(x, HOST if i in host_args else provider.device, segment)
            for i, x in enumerate(segment.inputs)
        ]
        fn = self._fresh("s", compiled)
        outs = [self._define(o, provider) for o in segment.outputs]
        step = StepInfo("segment", segment, None, f"segment {segment.index}")
        target = ", ".join(outs) + ("," if len(outs) == 1 else "")
        call = f"{fn}({', '.join(args)})"
        self._line(f"{target} = {self._timed(call, step)}" if outs else call, step)

    def _emit_node(self, segment: Segment, node: Node) -> None:
        provider = segment.provider
        info = NodeInfo(self.prepare_node(node), segment.graph)
        try:
            kernel = provider.kernel_for(info)
            if kernel is not None and self._may_overwrite(node, kernel, provider):
                fn = bind_kernel(dataclasses.replace(kernel, fn=kernel.in_place), info)
            else:
                fn = provider.bind(info)
        except Exception as exc:
            raise BuildFailure(segment, exc, node) from exc
        if kernel is not None and kernel.fresh_output and provider.device == HOST:
            self.fresh.update(o for o in node.outputs if o)
        host_inputs = kernel.host_inputs if kernel is not None else ()
        args = [
            self._value(x, HOST if i in host_inputs else provider.device, segment)
            for i, x in enumerate(node.inputs)
        ]
        args += [self._value(x, provider.device, segment) for x in node.implicit_inputs]
        name = self._fresh("k", fn)
        step = StepInfo("node", segment, node, f"{node.label} ({node.op_type})")
        call = self._timed(f"{name}({', '.join(args)})", step)
        if not is_multi_output(node.key):
            out = self._define(node.outputs[0], provider) if node.outputs[0] else "_"
            self._line(f"{out} = {call}", step)
            return
        self._line(f"_r = {call}", step)
        for i, out in enumerate(node.outputs):
            if out:
                self._line(f"{self._define(out, provider)} = _r[{i}]")
        self._line("del _r")  # the tuple would keep every output alive past its last use

    def _may_overwrite(self, node: Node, kernel: Kernel, provider: Provider) -> bool:
        """Whether the node may run in place: its first input is a host array that a kernel
        of this plan allocated, produced by the same provider, read by nothing else."""
        if kernel.in_place is None or not node.inputs:
            return False  # (self.fresh holds host values only)
        value = node.inputs[0]
        return (
            value in self.fresh
            and self.owner.get(value) is provider
            and self.readers.get(value) == 1
            and value not in self.graph.outputs
        )

    def _timed(self, call: str, step: StepInfo) -> str:
        """Wrap a call so the profiler records it: ``timed(step, start, result, end)``."""
        if self.profiler is None:
            return call
        self.ns.setdefault("_prof", self.profiler)
        self.ns.setdefault("_now", time.perf_counter_ns)
        step_name = self._fresh("p", step)
        return f"_prof.timed({step_name}, _now(), {call}, _now())"

    def _define(self, name: str, provider: Provider) -> str:
        var = f"v{len(self.var)}"
        self.var[(name, provider.device)] = var
        self.home[name] = provider.device
        self.owner[name] = provider
        return var

    def _insert_deletes(self) -> None:
        """``del`` each variable after the line that last reads it (outputs excepted)."""
        import re

        word = re.compile(r"\b([avx]\d+)\b")
        last: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            for var in word.findall(line):
                last[var] = i
        by_line: dict[int, list[str]] = {}
        for var, i in last.items():
            if not self.lines[i].lstrip().startswith("return"):
                by_line.setdefault(i, []).append(var)
        out: list[str] = []
        moved: dict[int, StepInfo] = {}
        for i, line in enumerate(self.lines):
            out.append(line)
            if i + 2 in self.steps:
                moved[len(out) + 1] = self.steps[i + 2]
            if i in by_line:
                out.append("    del " + ", ".join(sorted(by_line[i])))
        self.lines = out
        self.steps = moved


def _nbytes(value: Any) -> int:
    return int(getattr(value, "nbytes", 0)) if value is not None else 0
