"""Optional CUDA-graph replay of a whole compiled segment (``enable_cuda_graph``).

For each input signature (shapes, dtypes, and the values of any host inputs) the segment
runs eagerly once (compiling its kernels), is captured on its second call, and is replayed
from then on: inputs are copied into the graph's static buffers, the graph is launched, and
copies of its static outputs are returned (the graph overwrites them on the next replay).
Memory the graph allocates comes from a private pool kept alive with it, so no other array
can be handed those addresses. A capture that fails (a kernel that needs a host sync)
is reported once and that signature stays eager.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep_cupy._backend import cupy, is_host

__all__ = ["GraphRunner"]


class _Captured:
    def __init__(
        self, graph: Any, inputs: list[Any], outputs: tuple[Any, ...], pool: Any, stream: Any
    ) -> None:
        self.graph, self.inputs, self.outputs = graph, inputs, outputs
        self.pool, self.stream = pool, stream


class GraphRunner:
    """Wraps a segment callable with capture-and-replay per input signature."""

    def __init__(self, fn: Callable[..., tuple[Any, ...]], label: str, max_graphs: int = 8) -> None:
        self.fn = fn
        self.label = label
        self.host_inputs: tuple[int, ...] = getattr(fn, "host_inputs", ())
        self.max_graphs = max_graphs
        self.graphs: dict[tuple[Any, ...], _Captured] = {}
        self.seen: set[tuple[Any, ...]] = set()
        self.eager: set[tuple[Any, ...]] = set()
        self.replays = 0

    @staticmethod
    def signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
        """What a captured graph is valid for: device shapes/dtypes, host values."""
        return tuple(
            ("h", np.asarray(a).dtype.str, np.shape(a), np.asarray(a).tobytes())
            if is_host(a)
            else ("d", a.dtype.str, tuple(a.shape))
            for a in args
        )

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        key = self.signature(args)
        entry = self.graphs.get(key)
        if entry is None:
            if key in self.eager or key not in self.seen or len(self.graphs) >= self.max_graphs:
                self.seen.add(key)
                return self.fn(*args)  # the first call also compiles every kernel
            entry = self._capture(key, args)
            if entry is None:
                return self.fn(*args)
        for static, a in zip(entry.inputs, args):
            if static is not None:
                static[...] = a
        entry.graph.launch()
        self.replays += 1
        return tuple(o if is_host(o) else o.copy() for o in entry.outputs)

    def _capture(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> _Captured | None:
        cp = cupy()
        inputs = [None if is_host(a) else cp.empty_like(a) for a in args]
        for static, a in zip(inputs, args):
            if static is not None:
                static[...] = a
        call_args = [a if static is None else static for static, a in zip(inputs, args)]
        pool = cp.cuda.MemoryPool()
        stream = cp.cuda.Stream(non_blocking=True)
        cp.cuda.get_current_stream().synchronize()
        try:
            with cp.cuda.using_allocator(pool.malloc), stream:
                stream.begin_capture()
                try:
                    outputs = self.fn(*call_args)
                finally:
                    graph = stream.end_capture()
        except Exception as exc:
            self.eager.add(key)
            warnings.warn(
                f"CUDA graph capture of {self.label} failed ({type(exc).__name__}: {exc}); "
                "it runs without a graph for these input shapes",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        entry = _Captured(graph, inputs, tuple(outputs), pool, stream)
        self.graphs[key] = entry
        return entry
