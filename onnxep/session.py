"""``InferenceSession``: onnxruntime's Python API over an onnxep plan."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from onnxep.blas_threads import capped
from onnxep.device_values import is_device_array
from onnxep.discovery import REFERENCE, ProviderSpec, resolve_providers
from onnxep.errors import Fail, InvalidArgument, OnnxepError
from onnxep.explain import Explanation
from onnxep.feeds import check_feeds
from onnxep.fold import fold_constants
from onnxep.fuse import fuse_conv_followers
from onnxep.graph import Graph, graph_from_proto
from onnxep.io_binding import run_device_feeds
from onnxep.load import load_model
from onnxep.metadata import ModelMetadata, NodeArg
from onnxep.options import (
    STRICT_KEY,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
    warning_enabled,
)
from onnxep.ort_value import OrtValue
from onnxep.partition import partition
from onnxep.plan import Plan, RecoveringPlan
from onnxep.profiling import Profiler
from onnxep.provider import Provider

__all__ = ["InferenceSession", "placement"]


class InferenceSession:
    """Run an ONNX model on a priority list of providers, as ``onnxruntime.InferenceSession``."""

    def __init__(
        self,
        path_or_bytes: Any,
        sess_options: SessionOptions | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        start = time.perf_counter_ns()
        self._options = sess_options or SessionOptions()
        self._model, self._folder = load_model(
            path_or_bytes,
            initializers=self._options._initializers,
            dims=self._options._free_dims,
        )
        self._profiler = (
            Profiler(self._options.profile_file_prefix) if self._options.enable_profiling else None
        )
        self._build(providers or self._options._providers or None, provider_options)
        if self._profiler is not None:
            self._profiler.session_event("session_initialization", start, time.perf_counter_ns())

    # --- building ---------------------------------------------------------------------
    def _build(
        self,
        providers: Sequence[ProviderSpec] | None,
        provider_options: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        """Resolve the providers, prepare the graph and plan it (again, for set_providers)."""
        self._providers, notes = resolve_providers(providers, provider_options)
        optimize = self._options.graph_optimization_level != GraphOptimizationLevel.ORT_DISABLE_ALL
        self._graph = _prepared_graph(self._model, self._providers, optimize)
        if warning_enabled(self._options.log_severity_level):
            for note in notes:
                warnings.warn(note, RuntimeWarning, stacklevel=3)
        threads = self._threads = self._options.intra_op_num_threads or None
        for provider in self._providers:
            provider.configure(threads=threads)
        self._runner = RecoveringPlan(
            self._graph,
            self._providers,
            profiler=self._profiler,
            quiet=not warning_enabled(self._options.log_severity_level),
        )
        self._check_strict(providers)
        initializers = self._graph.initializers
        self._feedable = [n for n in self._graph.inputs if n not in initializers]
        self._overridable = [n for n in self._graph.inputs if n in initializers]

    def set_providers(
        self,
        providers: Sequence[ProviderSpec] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Re-plan the session on another provider list (onnxruntime re-creates it)."""
        self._build(providers, provider_options)

    def disable_fallback(self) -> None:
        """A provider that fails while running no longer hands its nodes to the next one:
        the error reaches the caller (see :class:`~onnxep.plan.RecoveringPlan`)."""
        self._runner.fallback = False

    def enable_fallback(self) -> None:
        """A provider that fails while running hands its nodes to the next one (the default)."""
        self._runner.fallback = True

    @property
    def _plan(self) -> Plan:
        return self._runner.plan

    @property
    def _excluded(self) -> dict[int, set[str]]:
        return self._runner.excluded

    def _check_strict(self, requested: Sequence[ProviderSpec] | None) -> None:
        if self._options._config.get(STRICT_KEY) != "1":
            return
        explicit = requested is not None and any(
            isinstance(s, str)
            and s.lower() in ("reference", REFERENCE.lower(), "cpuexecutionprovider")
            for s in requested
        )
        if explicit:
            return
        fallen = [
            n
            for seg in self._plan.partition.segments
            if seg.provider.name == REFERENCE
            for n in seg.nodes
        ]
        if fallen:
            names = ", ".join(f"{n.label} ({n.op_type})" for n in fallen[:20])
            more = f" and {len(fallen) - 20} more" if len(fallen) > 20 else ""
            raise InvalidArgument(
                f"{STRICT_KEY} is set but {len(fallen)} node(s) would fall back to the "
                f"reference CPU path: {names}{more}"
            )

    # --- onnxruntime's getters --------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        """The inputs to feed (initializers excluded, as onnxruntime does)."""
        return [NodeArg.of(n, self._graph.type_of(n)) for n in self._feedable]

    def get_outputs(self) -> list[NodeArg]:
        """The graph outputs."""
        return [NodeArg.of(n, self._graph.type_of(n)) for n in self._graph.outputs]

    def get_overridable_initializers(self) -> list[NodeArg]:
        """Initializers that are also graph inputs, and so may be fed."""
        return [NodeArg.of(n, self._graph.type_of(n)) for n in self._overridable]

    def get_modelmeta(self) -> ModelMetadata:
        """The model's metadata."""
        return ModelMetadata.of(self._model)

    def get_providers(self) -> list[str]:
        """The providers this session really uses, in priority order (reference last)."""
        return [p.name for p in self._providers]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        """Each provider's options, as strings (onnxruntime's convention)."""
        return {p.name: {k: str(v) for k, v in p.options.items()} for p in self._providers}

    def get_session_options(self) -> SessionOptions:
        """The options this session was built with."""
        return self._options

    def get_profiling_start_time_ns(self) -> int:
        """When profiling started, in ns (0 when profiling is off)."""
        return self._profiler.origin_ns if self._profiler else 0

    def end_profiling(self) -> str:
        """Write the Chrome-trace profile, stop profiling, return the file name ('' if off)."""
        if self._profiler is None or not self._profiler.active:
            return ""
        return self._profiler.write()

    # --- placement --------------------------------------------------------------------
    @property
    def plan(self) -> Plan:
        """The current execution plan."""
        return self._plan

    def explain(self) -> Explanation:
        """Where each node runs and why the others did not (print it, or ``.to_dict()``)."""
        return Explanation(self._plan.partition, self._plan)

    def assignment(self, node: int | str) -> str:
        """The provider name a node (by position or name) was given."""
        return self.explain().provider_of(node)

    def get_provider_graph_assignment_info(self) -> list[Any]:
        """onnxruntime's per-provider list of assigned nodes."""
        return self.explain().assignment_info()

    # --- running ----------------------------------------------------------------------
    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[Any]:
        """Run the model; ``output_names`` None or empty means all outputs."""
        names = self._output_names(output_names)
        feeds, args = self._arguments(input_feed)
        return self._run_host(names, feeds, args)

    def _run_host(self, names: list[str], feeds: dict[str, Any], args: list[Any]) -> list[Any]:
        """``run`` after its checks: the named outputs, on the host."""
        if any(is_device_array(v) for v in feeds.values()):  # CuPy/DLPack feeds
            outputs = run_device_feeds(self, args)
        else:
            outputs = self._run_plan(args)
        by_name = dict(zip(self._graph.outputs, outputs, strict=True))
        fed = [v for v in feeds.values() if isinstance(v, np.ndarray)]
        return [_as_result(by_name[n], fed) for n in names]

    def run_with_ort_values(
        self,
        output_names: Sequence[str] | None,
        input_dict_ort_values: Mapping[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[OrtValue]:
        """Run on OrtValue feeds; the outputs come back as OrtValues. With a feed on a device,
        each output stays on the device that produced it (no copy to the host)."""
        names = self._output_names(output_names)
        feeds, args = self._arguments(input_dict_ort_values)
        if not any(is_device_array(v) for v in feeds.values()):
            return [OrtValue(v) for v in self._run_host(names, feeds, args)]
        by_name = dict(zip(self._graph.outputs, run_device_feeds(self, args, True), strict=True))
        return [OrtValue(by_name[n]) for n in names]

    def run_async(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        callback: Callable[[list[Any], Any, str], Any],
        user_data: Any,
        run_options: RunOptions | None = None,
    ) -> None:
        """Run in a background thread, then call ``callback(outputs, user_data, error)``:
        the outputs and ``""``, or ``[]`` and the error's message (onnxruntime's contract)."""

        def work() -> None:
            try:
                outputs = self.run(output_names, input_feed, run_options)
            except Exception as exc:  # handed to the callback, as onnxruntime does
                callback([], user_data, f"{type(exc).__name__}: {exc}")
                return
            callback(outputs, user_data, "")

        threading.Thread(target=work, name="onnxep-run-async", daemon=True).start()

    def create_ortvalue_from_shape_and_type(
        self,
        shape: Sequence[int],
        element_type: Any,
        device_type: str = "cpu",
        device_id: int = 0,
        vendor_id: int = -1,
    ) -> OrtValue:
        """An uninitialised tensor OrtValue on ``device_type`` (see OrtValue's constructor)."""
        return OrtValue.ortvalue_from_shape_and_type(
            shape, element_type, device_type, device_id, vendor_id
        )

    def io_binding(self) -> Any:
        """An :class:`~onnxep.io_binding.IOBinding`: device inputs, outputs left on a device."""
        from onnxep import io_binding

        return io_binding.IOBinding(self)

    def run_with_iobinding(self, iobinding: Any, run_options: RunOptions | None = None) -> None:
        """Run with a binding's inputs; its outputs land where they were bound."""
        from onnxep import io_binding

        io_binding.run_with_iobinding(self, iobinding)

    def _arguments(self, input_feed: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        """The checked feeds, and the plan's arguments: per graph input, its feed or else its
        initializer."""
        feeds = check_feeds(input_feed, self._feedable, self._overridable, self._graph.types)
        initializers = self._graph.initializers
        return feeds, [feeds[n] if n in feeds else initializers[n] for n in self._graph.inputs]

    def _output_names(self, output_names: Sequence[str] | None) -> list[str]:
        if not output_names:
            return list(self._graph.outputs)
        if isinstance(output_names, str):
            raise InvalidArgument(
                f"output_names must be a list of names, got the string {output_names!r}"
            )
        for name in output_names:
            if name not in self._graph.outputs:
                raise InvalidArgument(
                    f"Invalid output name: {name!r}; the model's outputs are "
                    f"{list(self._graph.outputs)}"
                )
        return list(output_names)

    def _run_plan(self, args: list[Any]) -> tuple[Any, ...]:
        self._plan.stats.count = self._plan.stats.bytes = 0
        start = time.perf_counter_ns()
        try:
            with np.errstate(all="ignore"), capped(self._threads):
                outputs = self._runner.run(*args)  # inf/NaN arithmetic quiet, as onnxruntime
        except OnnxepError:
            raise
        except Exception as exc:  # the last provider failed: name the node
            step = self._runner.failing_step(exc)
            node = step.node if step is not None else None
            where = f"node {node.label!r} ({node.op_type})" if node else "the model"
            raise Fail(
                f"Non-zero status code returned while running {where}: {type(exc).__name__}: {exc}"
            ) from exc
        if self._profiler is not None:
            self._profiler.session_event("model_run", start, time.perf_counter_ns())
        return outputs

    @property
    def providers(self) -> list[Provider]:
        """The provider instances, in priority order."""
        return list(self._providers)


def _as_result(value: Any, fed: Sequence[np.ndarray] = ()) -> Any:
    """Outputs as onnxruntime returns them: numpy arrays (0-d for scalars), lists, dicts.

    An output that is a model constant or a feed (or a view of one, from Identity or
    Reshape) is returned as a copy, so the caller never aliases the model or its own input.
    """
    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, np.ndarray) and (
        not value.flags.writeable or any(np.may_share_memory(value, f) for f in fed)
    ):
        return value.copy()
    return value


def _prepared_graph(model: Any, providers: Sequence[Provider], optimize: bool) -> Graph:
    """The model's graph, constants folded and Conv followers fused when ``optimize``."""
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    graph = graph_from_proto(model.graph, opsets, overridable=model.ir_version >= 4)
    if optimize:
        graph = fuse_conv_followers(fold_constants(graph, providers[-1]))
    return graph


def placement(
    path_or_bytes: Any,
    providers: Sequence[ProviderSpec] | None = None,
    provider_options: Sequence[Mapping[str, Any]] | None = None,
) -> Explanation:
    """The placement report of a model, partitioned but not compiled.

    For a model a session refuses because some node has no implementation anywhere: the
    report still shows where every other node would run, and names the ones nothing runs.
    """
    model, _ = load_model(path_or_bytes)
    chosen, _ = resolve_providers(providers, provider_options)
    return Explanation(partition(_prepared_graph(model, chosen, optimize=True), chosen))
