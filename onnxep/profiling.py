"""Profiling in onnxruntime's Chrome-trace JSON: one event per node or compiled segment."""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from typing import Any

__all__ = ["Profiler"]


class Profiler:
    """Collects events while enabled; ``write`` saves them as a Chrome trace."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events: list[dict[str, Any]] = []
        self.origin_ns = time.perf_counter_ns()
        self.pid = os.getpid()
        self.active = True  # until write(): onnxruntime stops profiling at end_profiling()

    def _us(self, ns: int) -> int:
        return (ns - self.origin_ns) // 1000

    def timed(self, step: Any, start: int, result: Any, end: int) -> Any:
        """Record one step (a plan's StepInfo) and pass its result through."""
        if not self.active:
            return result
        segment = step.segment
        node = step.node
        provider = segment.provider.name if segment is not None else ""
        name = node.label if node is not None else f"segment_{segment.index}"
        args: dict[str, Any] = {"provider": provider}
        if node is not None:
            args["op_name"] = node.op_type
        elif segment is not None:
            args["op_name"] = "+".join(sorted({n.op_type for n in segment.nodes}))
            args["node_count"] = len(segment.nodes)
        self.events.append(
            {
                "cat": "Node",
                "pid": self.pid,
                "tid": threading.get_ident() % 100000,
                "dur": max((end - start) // 1000, 0),
                "ts": self._us(start),
                "ph": "X",
                "name": f"{name}_kernel_time",
                "args": args,
            }
        )
        return result

    def session_event(self, name: str, start: int, end: int) -> None:
        """Record a session-level event (model loading, run)."""
        if not self.active:
            return
        self.events.append(
            {
                "cat": "Session",
                "pid": self.pid,
                "tid": threading.get_ident() % 100000,
                "dur": max((end - start) // 1000, 0),
                "ts": self._us(start),
                "ph": "X",
                "name": name,
                "args": {},
            }
        )

    def write(self) -> str:
        """Write the trace to ``<prefix>_<timestamp>.json`` (onnxruntime's name), stop recording."""
        now = datetime.datetime.now()
        stamp = f"{now:%Y-%m-%d_%H-%M-%S}_{now.microsecond // 1000:03d}"
        path = f"{self.prefix}_{stamp}.json"
        self.active = False
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.events, handle)
        return path
