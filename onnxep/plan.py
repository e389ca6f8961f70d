"""The execution plan: partition, compile each segment once, run, survive failing providers.

:func:`build_plan` partitions a graph, compiles or binds each segment and emits the whole
schedule as one generated function (:mod:`onnxep.codegen`). :class:`RecoveringPlan` reruns
without a provider that fails at run time; :class:`SubgraphFunction` is a compiled
If/Loop/Scan body.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from onnxep.codegen import BuildFailure, Emitter, Plan, StepInfo, TransferStats
from onnxep.errors import EPFail, NotImplemented, OnnxepError
from onnxep.graph import Graph, Node
from onnxep.options import warning_enabled
from onnxep.partition import partition
from onnxep.provider import Provider

__all__ = [
    "Plan",
    "RecoveringPlan",
    "StepInfo",
    "SubgraphFunction",
    "TransferStats",
    "build_plan",
]


class RecoveringPlan:
    """A plan that survives a failing provider.

    When a segment of any provider but the last raises, it warns (naming the provider and
    the error), rebuilds the plan without that provider for those nodes and runs again; the
    result is still right. An error of the last provider propagates to the caller. A rebuild
    is kept only when the run then succeeds: when the next provider fails too, the input was
    at fault (a size the model cannot take, say), and the next run starts from the plan that
    this one started from, its providers intact.
    """

    def __init__(
        self,
        graph: Graph,
        providers: Sequence[Provider],
        *,
        profiler: Any = None,
        where: str = "",
        quiet: bool = False,
    ) -> None:
        self.graph = graph
        self.providers = tuple(providers)
        self.profiler = profiler
        self.where = where  # "" for a model, " of a control-flow body" for a body
        self.quiet = quiet  # no warning when falling back (log severity above warning)
        self.fallback = True  # False: a failing provider's error reaches the caller
        self.excluded: dict[int, set[str]] = {}
        self.plan = build_plan(graph, providers, profiler=profiler, quiet=quiet)
        self.failed: Plan | None = None  # the plan the last failed run ended in

    def run(self, *args: Any) -> tuple[Any, ...]:
        """Run, falling back as often as providers fail."""
        start, excluded = self.plan, {k: set(v) for k, v in self.excluded.items()}
        while True:
            plan = self.plan
            try:
                return plan.run(*args)
            except Exception as exc:
                if isinstance(exc, OnnxepError) or not self._fall_back(plan, exc):
                    self.failed, self.plan, self.excluded = plan, start, excluded
                    raise

    def failing_step(self, exc: BaseException) -> StepInfo | None:
        """The step the last failed run was executing when ``exc`` was raised."""
        return self.failed.failing_step(exc) if self.failed is not None else None

    def _fall_back(self, plan: Plan, exc: Exception) -> bool:
        step = plan.failing_step(exc)
        segment = step.segment if step is not None else None
        last = segment is not None and segment.provider is self.providers[-1]
        if not self.fallback or step is None or segment is None or last:
            return False
        if not self.quiet and warning_enabled():
            warnings.warn(
                f"{segment.provider.name} failed while running segment {segment.index}"
                f"{self.where} ({step.description}): {type(exc).__name__}: {exc}; rebuilding "
                f"those {len(segment.nodes)} node(s) on the next provider",
                RuntimeWarning,
                stacklevel=4,
            )
        for node in segment.nodes:
            self.excluded.setdefault(node.index, set()).add(segment.provider.name)
        try:
            self.plan = build_plan(
                self.graph,
                self.providers,
                exclude=self.excluded,
                profiler=self.profiler,
                quiet=self.quiet,
            )
        except OnnxepError as err:
            raise EPFail(f"could not rebuild after {segment.provider.name} failed: {err}") from exc
        return True


class SubgraphFunction:
    """A compiled If/Loop/Scan body: ``f(*formal_inputs, *outer_values) -> outputs``.

    ``outer_values`` are the node's ``implicit_inputs``, in that order; ``pick`` selects the
    ones this body reads (the branches of an If read different outer values).
    """

    def __init__(
        self, body: RecoveringPlan, n_formal: int, pick: tuple[int, ...] | None = None
    ) -> None:
        self.body = body
        self.n_formal = n_formal
        self.pick = pick

    @property
    def plan(self) -> Plan:
        """The body's current plan."""
        return self.body.plan

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        if self.pick is not None:
            outer = args[self.n_formal :]
            args = (*args[: self.n_formal], *[outer[i] for i in self.pick])
        return self.body.run(*args)


def build_plan(
    graph: Graph,
    providers: Sequence[Provider],
    *,
    exclude: Mapping[int, set[str]] | None = None,
    profiler: Any = None,
    outputs_on_device: bool = False,
    device_feeds: bool = False,
    quiet: bool = False,
) -> Plan:
    """Partition and compile; a provider that fails to compile loses those nodes, with a
    warning (unless ``quiet`` or the default log severity is above warning).

    For :mod:`onnxep.io_binding`: ``outputs_on_device`` leaves each graph output on the device
    that produced it instead of copying it to the host; ``device_feeds`` copies a feed that
    is a device array to the host before a host provider reads it.
    """
    excluded = {k: set(v) for k, v in (exclude or {}).items()}
    prepare = functools.partial(_with_subgraphs, providers=providers, profiler=profiler)
    while True:
        parts = partition(graph, providers, exclude=excluded)
        try:
            emitter = Emitter(
                graph, parts, providers, profiler, outputs_on_device, device_feeds, prepare
            )
            return emitter.emit()
        except BuildFailure as failure:
            segment = failure.segment
            if segment.provider is providers[-1]:
                raise _not_implemented(failure) from failure.error
            if not quiet and warning_enabled():
                warnings.warn(
                    f"{segment.provider.name} failed to compile segment {segment.index} "
                    f"({len(segment.nodes)} nodes): {type(failure.error).__name__}: "
                    f"{failure.error}; those nodes fall back to the next provider",
                    RuntimeWarning,
                    stacklevel=3,
                )
            for node in segment.nodes:
                excluded.setdefault(node.index, set()).add(segment.provider.name)


def _not_implemented(failure: BuildFailure) -> Exception:
    node = failure.node or failure.segment.nodes[0]
    error = failure.error
    if isinstance(error, (NotImplemented, EPFail)):
        return error
    return NotImplemented(f"cannot run node {node.label!r} (op {node.key}): {error}")


def _with_subgraphs(node: Node, providers: Sequence[Provider], profiler: Any) -> Node:
    """The node with each graph attribute replaced by its compiled :class:`SubgraphFunction`."""
    if not any(isinstance(v, Graph) or _graphs(v) for v in node.attrs.values()):
        return node
    attrs = dict(node.attrs)
    outer = node.implicit_inputs
    for key, value in node.attrs.items():
        if isinstance(value, Graph):
            attrs[key] = compile_subgraph(value, providers, profiler, outer)
        elif _graphs(value):
            attrs[key] = tuple(compile_subgraph(g, providers, profiler, outer) for g in value)
    return dataclasses.replace(node, attrs=attrs)


def _graphs(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, Graph) for v in value)


def compile_subgraph(
    graph: Graph, providers: Sequence[Provider], profiler: Any, outer: tuple[str, ...] = ()
) -> SubgraphFunction:
    """Partition and compile a control-flow body with the session's providers.

    ``outer`` names the values the node passes after the formal inputs (its implicit inputs).
    """
    pick = None
    if outer and graph.outer_names != outer:
        pick = tuple(outer.index(name) for name in graph.outer_names)
    body = RecoveringPlan(graph, providers, where=" of a control-flow body")
    return SubgraphFunction(body, len(graph.inputs), pick)
