"""The placement report: who got which nodes, why the others declined, what is copied."""

from __future__ import annotations

import collections
import json
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from onnxep.partition import Partition
    from onnxep.plan import Plan

__all__ = ["Explanation", "annotate_model"]


class Explanation:
    """A placement, printable (``str``) and as data (``to_dict``).

    Built from a compiled plan, or from a partition alone (``plan=None``) for a model that
    cannot be compiled: then it has no transfers, and lists the nodes no provider can run.
    """

    def __init__(self, partition: Partition, plan: Plan | None = None) -> None:
        self.plan = plan
        self.partition = partition

    def provider_of(self, node: int | str) -> str:
        """The provider of a node given by position in the graph, name or label."""
        for seg in self.partition.segments:
            for n in seg.nodes:
                if node in (n.index, n.name, n.label):
                    return seg.provider.name
        if any(node in (n.index, n.name, n.label) for n in self.partition.graph.folded):
            raise KeyError(f"node {node!r} was folded into a constant at session creation")
        raise KeyError(f"no node {node!r} in the graph")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        parts = self.partition
        fallback = parts.providers[-1].name
        segments = [
            {
                "index": seg.index,
                "provider": seg.provider.name,
                "device": seg.provider.device,
                "nodes": [n.label for n in seg.nodes],
                "op_types": dict(collections.Counter(n.op_type for n in seg.nodes)),
                "inputs": list(seg.inputs),
                "outputs": list(seg.outputs),
            }
            for seg in parts.segments
        ]
        declined = [
            {
                "node": n.label,
                "op_type": n.op_type,
                "op": str(n.key),
                "ran_on": seg.provider.name,
                "declined_by": [
                    {"provider": p, "reason": r} for p, r in parts.refusals.get(n.index, [])
                ],
            }
            for seg in parts.segments
            for n in seg.nodes
            if parts.refusals.get(n.index)
        ]

        def runnable(entry: dict[str, Any]) -> bool:  # the fallback provider did not decline it
            return all(r["provider"] != fallback for r in entry["declined_by"])

        unrunnable = [d for d in declined if not runnable(d)]
        fell_back = [d for d in declined if d["ran_on"] == fallback and runnable(d)]
        per_provider = collections.Counter(
            seg.provider.name for seg in parts.segments for _ in seg.nodes
        )
        return {
            "providers": [p.name for p in parts.providers],
            "nodes": len(parts.graph.nodes),
            "folded": [n.label for n in parts.graph.folded],
            "nodes_per_provider": dict(per_provider),
            "segments": segments,
            "fallback": fell_back,
            "declined": [d for d in declined if d["ran_on"] != fallback],
            "unrunnable": unrunnable,
            "compiled": self.plan is not None,
            "transfers": self._transfers(),
        }

    def _transfers(self) -> dict[str, Any] | None:
        if self.plan is None:
            return None
        runtime = [t for t in self.plan.transfers if not t.constant]
        constant = [t for t in self.plan.transfers if t.constant]
        return {
            "per_run": len(runtime),
            "per_run_values": [f"{t.value}: {t.source} -> {t.target}" for t in runtime],
            "constants_uploaded": len(constant),
            "constant_bytes": sum(t.nbytes for t in constant),
            "last_run_count": self.plan.stats.count,
            "last_run_bytes": self.plan.stats.bytes,
        }

    def to_json(self) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    def assignment_info(self) -> list[dict[str, Any]]:
        """onnxruntime's ``get_provider_graph_assignment_info`` shape: nodes per provider."""
        grouped: dict[str, list[dict[str, str]]] = {}
        for seg in self.partition.segments:
            for n in seg.nodes:
                grouped.setdefault(seg.provider.name, []).append(
                    {"name": n.label, "op_type": n.op_type, "domain": n.domain}
                )
        return [{"ep_name": ep, "nodes": nodes} for ep, nodes in grouped.items()]

    def __str__(self) -> str:
        data = self.to_dict()
        lines = [
            f"providers (priority order): {', '.join(data['providers'])}",
            f"{data['nodes']} nodes: "
            + ", ".join(f"{n} on {p}" for p, n in data["nodes_per_provider"].items()),
            "",
            "segments:",
        ]
        if data["folded"]:
            lines.insert(2, f"{len(data['folded'])} more folded into constants at session creation")
        for seg in data["segments"]:
            ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in seg["op_types"].items())
            lines.append(
                f"  [{seg['index']}] {seg['provider']} ({seg['device']}): "
                f"{len(seg['nodes'])} nodes: {ops}"
            )
        if data["fallback"]:
            lines += ["", "fell back to the reference path:"]
            lines += _declines(data["fallback"], show_target=False)
        if data["declined"]:
            lines += ["", "ran on a later provider in the list:"]
            lines += _declines(data["declined"], show_target=True)
        if data["unrunnable"]:
            lines += ["", "no provider can run (the model cannot run until one does):"]
            lines += _declines(data["unrunnable"], show_target=False)
        t = data["transfers"]
        if t is None:
            return "\n".join([*lines, "", "not compiled: placement only, no transfers planned"])
        lines += [
            "",
            f"transfers per run: {t['per_run']}"
            + (f" ({'; '.join(t['per_run_values'][:8])})" if t["per_run"] else ""),
            f"constants uploaded once: {t['constants_uploaded']} ({t['constant_bytes']} bytes)",
            f"last run: {t['last_run_count']} copies, {t['last_run_bytes']} bytes",
        ]
        return "\n".join(lines)


def _declines(entries: list[dict[str, Any]], *, show_target: bool) -> list[str]:
    lines = []
    for entry in entries:
        target = f" -> {entry['ran_on']}" if show_target else ""
        lines.append(f"  {entry['node']} ({entry['op']}){target}")
        lines += [f"      {d['provider']}: {d['reason']}" for d in entry["declined_by"]]
    return lines


def annotate_model(model: onnx.ModelProto, explanation: Explanation) -> onnx.ModelProto:
    """A copy of the model whose nodes carry ``onnxep.provider`` in ``metadata_props``."""
    annotated = onnx.ModelProto()
    annotated.CopyFrom(model)
    by_index = {
        n.index: seg.provider.name for seg in explanation.partition.segments for n in seg.nodes
    }
    segment_of = {n.index: seg.index for seg in explanation.partition.segments for n in seg.nodes}
    for i, node in enumerate(annotated.graph.node):
        if i in by_index:
            for key, value in (
                ("onnxep.provider", by_index[i]),
                ("onnxep.segment", str(segment_of[i])),
            ):
                prop = node.metadata_props.add()
                prop.key, prop.value = key, value
    return annotated
