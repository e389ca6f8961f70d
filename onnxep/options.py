"""Session and run options, spelled as onnxruntime spells them."""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "ExecutionMode",
    "ExecutionOrder",
    "GraphOptimizationLevel",
    "RunOptions",
    "SessionOptions",
    "set_default_logger_severity",
    "set_default_logger_verbosity",
    "warning_enabled",
]

STRICT_KEY = "session.disable_cpu_ep_fallback"
_WARNING = 2  # onnxruntime's severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal
_default_severity = _WARNING


def set_default_logger_severity(severity: int) -> None:
    """The log severity of sessions that do not set one: 3 (error) or 4 (fatal) silences
    onnxep's warnings (provider fallbacks), as onnxruntime's logger does."""
    global _default_severity
    if not 0 <= int(severity) <= 4:
        raise ValueError(f"log severity must be 0 (verbose) to 4 (fatal), got {severity}")
    _default_severity = int(severity)


def set_default_logger_verbosity(verbosity: int) -> None:
    """Accepted for onnxruntime scripts: onnxep has no verbose log to tune."""


def warning_enabled(severity: int = -1) -> bool:
    """Whether a warning shows at this log severity (-1: the default severity)."""
    return (_default_severity if severity < 0 else severity) <= _WARNING


class GraphOptimizationLevel(enum.IntEnum):
    """onnxruntime's levels; onnxep's providers do their own fusion at every level."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """onnxruntime's execution modes; onnxep runs nodes sequentially in both."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class ExecutionOrder(enum.IntEnum):
    """onnxruntime's node orders; onnxep runs a topological order chosen at load in all."""

    DEFAULT = 0
    PRIORITY_BASED = 1
    MEMORY_EFFICIENT = 2


class SessionOptions:
    """Options for :class:`~onnxep.InferenceSession`, with onnxruntime's attribute names.

    ``log_severity_level`` 3 or 4 silences the session's warnings; the thread count goes to
    the providers; free-dimension overrides, added initializers and ``add_provider`` take
    effect when the session loads. The other knobs (memory arena and patterns, execution
    mode and order) are accepted and change nothing: onnxep runs nodes in one topological
    order and numpy allocates.
    """

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.log_severity_level = -1  # onnxruntime: -1 = the default level (warning)
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_profiling = False
        self.profile_file_prefix = "onnxruntime_profile_"
        self.optimized_model_filepath = ""
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self.use_per_session_threads = True
        self.execution_order = ExecutionOrder.DEFAULT
        self._config: dict[str, str] = {}
        self._free_dims: dict[tuple[str, str], int] = {}  # ("name"|"denotation", key) -> size
        self._initializers: dict[str, Any] = {}
        self._providers: list[Any] = []

    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Fix the symbolic input dimension ``dim_name`` (``"batch"``...) to ``dim_value``."""
        self._free_dims[("name", str(dim_name))] = _dim(dim_name, dim_value)

    def add_free_dimension_override_by_denotation(
        self, dim_denotation: str, dim_value: int
    ) -> None:
        """Fix every input dimension denoted ``dim_denotation`` (``"DATA_BATCH"``...)."""
        self._free_dims[("denotation", str(dim_denotation))] = _dim(dim_denotation, dim_value)

    def add_initializer(self, name: str, ortvalue: Any) -> None:
        """Replace the model's initializer ``name`` with this value (same dtype and shape)."""
        from onnxep.ort_value import unwrap

        self._initializers[str(name)] = unwrap(ortvalue)

    def add_external_initializers(self, names: Any, ortvalues: Any) -> None:
        """Provide initializers held in external data from memory instead of files."""
        names, values = list(names), list(ortvalues)
        if len(names) != len(values):
            raise ValueError(f"{len(names)} initializer names but {len(values)} values")
        for name, value in zip(names, values):
            self.add_initializer(name, value)

    def add_provider(self, provider_name: str, provider_options: dict[str, Any]) -> None:
        """Append a provider (with options) to use when the session names none."""
        self._providers.append((provider_name, dict(provider_options or {})))

    def has_providers(self) -> bool:
        """Whether :meth:`add_provider` chose providers."""
        return bool(self._providers)

    def register_custom_ops_library(self, library_path: str) -> None:
        """Not provided: onnxruntime custom-op libraries are compiled against onnxruntime."""
        from onnxep.errors import NotImplemented

        raise NotImplemented(  # noqa: F901 - onnxruntime's error class, not the builtin
            f"onnxep cannot load the onnxruntime custom-op library {library_path!r}; run "
            "the custom domain's ops in an onnxep provider instead "
            "(docs/writing-a-provider.md)"
        )

    @property
    def disable_cpu_ep_fallback(self) -> int:
        """1 refuses to build a session whose nodes would fall back to the reference path."""
        return int(self._config.get(STRICT_KEY, "0") == "1")

    @disable_cpu_ep_fallback.setter
    def disable_cpu_ep_fallback(self, value: Any) -> None:
        self._config[STRICT_KEY] = "1" if int(value) else "0"

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Set a free-form configuration entry (``session.disable_cpu_ep_fallback``...)."""
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        """A configuration entry; raises KeyError-like InvalidArgument when unset."""
        from onnxep.errors import InvalidArgument

        if key not in self._config:
            raise InvalidArgument(f"SessionOptions config entry {key!r} is not set")
        return self._config[key]

    def has_session_config_entry(self, key: str) -> bool:
        """Whether a configuration entry is set."""
        return key in self._config


def _dim(key: Any, value: Any) -> int:
    if int(value) < 0:
        raise ValueError(f"free dimension {key!r}: the size must be >= 0, got {value}")
    return int(value)


class RunOptions:
    """Per-run options, with onnxruntime's attribute names."""

    def __init__(self) -> None:
        self.log_severity_level = -1  # onnxruntime: -1 = the default level (warning)
        self.log_verbosity_level = 0
        self.logid = ""
        self.run_tag = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False
        self._config: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        """Set a free-form run configuration entry."""
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        """A run configuration entry."""
        return self._config[key]
