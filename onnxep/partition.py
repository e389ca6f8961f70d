"""The partitioner: each node to the first provider that supports it, then segments.

Nodes are assigned in priority order (the reference provider is always last and takes the
rest); the reasons of every provider that declined a node are kept for the placement report.
Same-provider nodes are merged into maximal segments, never creating a cycle between
segments: a node may join a segment only if no other segment it depends on depends on that
segment. Segments smaller than a provider's ``min_segment_nodes`` are handed down the list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from onnxep.graph import Graph, Node, NodeInfo
from onnxep.provider import Provider, Segment

__all__ = ["Partition", "partition"]


@dataclasses.dataclass(frozen=True)
class Partition:
    """Segments in execution order, and why each provider declined each node it did."""

    graph: Graph
    providers: tuple[Provider, ...]
    segments: tuple[Segment, ...]
    assignment: dict[int, Provider]  # node index -> provider
    refusals: dict[int, list[tuple[str, str]]]  # node index -> [(provider name, reason)]

    def provider_of(self, node: Node) -> Provider:
        """The provider a node was given to."""
        return self.assignment[node.index]


def partition(
    graph: Graph,
    providers: Sequence[Provider],
    exclude: Mapping[int, set[str]] | None = None,
) -> Partition:
    """Assign every node and group the assignment into acyclic segments.

    ``exclude`` maps node indices to provider names that may not take them (used when a
    provider failed to compile or run them).
    """
    refusals: dict[int, list[tuple[str, str]]] = {}
    banned: dict[int, set[str]] = {k: set(v) for k, v in (exclude or {}).items()}
    for index, names in banned.items():
        refusals[index] = [(name, "failed earlier in this session (see warning)") for name in names]
    while True:
        assignment = _assign(graph, providers, refusals, banned)
        groups = _group(graph, assignment)
        small = [g for g in groups if len(g) < assignment[g[0].index].min_segment_nodes]
        if not small:
            break
        for group in small:
            provider = assignment[group[0].index]
            reason = (
                f"island of {len(group)} node(s) is smaller than "
                f"{provider.name}'s minimum of {provider.min_segment_nodes}"
            )
            for node in group:
                banned.setdefault(node.index, set()).add(provider.name)
                refusals.setdefault(node.index, []).append((provider.name, reason))
    segments = tuple(
        _segment(i, group, assignment[group[0].index], graph)
        for i, group in enumerate(_execution_order(graph, groups))
    )
    return Partition(graph, tuple(providers), segments, assignment, refusals)


def _assign(
    graph: Graph,
    providers: Sequence[Provider],
    refusals: dict[int, list[tuple[str, str]]],
    banned: dict[int, set[str]],
) -> dict[int, Provider]:
    assignment: dict[int, Provider] = {}
    for node in graph.nodes:
        info = NodeInfo(node, graph)
        reasons = refusals.setdefault(node.index, [])
        seen = {name for name, _ in reasons}
        for provider in providers:
            if provider.name in banned.get(node.index, ()):
                continue
            try:
                support = provider.supports(info)
            except Exception as exc:  # a buggy supports() declines, it does not crash
                support_ok, reason = False, f"supports() raised {type(exc).__name__}: {exc}"
            else:
                support_ok, reason = support.ok, support.reason
            if support_ok:
                assignment[node.index] = provider
                break
            if provider.name not in seen:
                reasons.append((provider.name, reason or "declined"))
        else:
            assignment[node.index] = providers[-1]  # the reference path; it reports the error
    return assignment


def _group(graph: Graph, assignment: dict[int, Provider]) -> list[list[Node]]:
    """Greedy merge in topological order; a node joins a same-provider group if acyclic."""
    producer = graph.producers()
    group_of: dict[int, int] = {}  # node index -> group id
    groups: list[list[Node]] = []
    deps: list[set[int]] = []  # group id -> group ids it reads from directly
    latest: dict[str, int] = {}  # provider name -> its most recent group
    for node in graph.nodes:
        provider = assignment[node.index]
        reads = {
            group_of[producer[x].index]
            for x in (*node.inputs, *node.implicit_inputs)
            if x and x in producer
        }
        candidates = [
            g for g in sorted(reads, reverse=True) if _owner(groups[g], assignment) is provider
        ]
        if provider.name in latest:
            candidates.append(latest[provider.name])
        target = next((g for g in candidates if _can_join(g, reads, deps)), None)
        if target is None:
            target = len(groups)
            groups.append([])
            deps.append(set())
        groups[target].append(node)
        group_of[node.index] = target
        deps[target] |= reads - {target}
        latest[provider.name] = target
    return groups


def _owner(group: list[Node], assignment: dict[int, Provider]) -> Provider:
    return assignment[group[0].index]


def _can_join(target: int, reads: set[int], deps: list[set[int]]) -> bool:
    """Joining is safe unless some other group the node reads already depends on ``target``."""
    stack = [g for g in reads if g != target]
    seen: set[int] = set()
    while stack:
        g = stack.pop()
        if g == target:
            return False
        if g in seen:
            continue
        seen.add(g)
        stack.extend(deps[g])
    return True


def _execution_order(graph: Graph, groups: list[list[Node]]) -> list[list[Node]]:
    """Groups in a topological order of their data dependencies."""
    producer = graph.producers()
    group_of = {n.index: gi for gi, g in enumerate(groups) for n in g}
    needs = [
        {
            group_of[producer[x].index]
            for n in g
            for x in (*n.inputs, *n.implicit_inputs)
            if x and x in producer
        }
        - {gi}
        for gi, g in enumerate(groups)
    ]
    done: set[int] = set()
    order: list[list[Node]] = []
    while len(order) < len(groups):
        ready = [gi for gi in range(len(groups)) if gi not in done and needs[gi] <= done]
        if not ready:  # cannot happen: grouping never creates cycles
            raise AssertionError("segment graph has a cycle")
        done.add(ready[0])
        order.append(groups[ready[0]])
    return order


def _segment(index: int, nodes: list[Node], provider: Provider, graph: Graph) -> Segment:
    inside = {o for n in nodes for o in n.outputs if o}
    inputs: list[str] = []
    for node in nodes:
        for name in (*node.inputs, *node.implicit_inputs):
            if name and name not in inside and name not in inputs:
                inputs.append(name)
    member = {n.index for n in nodes}
    read_outside = {
        name
        for n in graph.nodes
        if n.index not in member
        for name in (*n.inputs, *n.implicit_inputs)
    }
    outputs = [
        o for n in nodes for o in n.outputs if o and (o in read_outside or o in graph.outputs)
    ]
    return Segment(index, provider, tuple(nodes), tuple(inputs), tuple(outputs), graph)
