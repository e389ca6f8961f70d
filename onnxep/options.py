"""Session and run options, spelled as onnxruntime spells them."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["ExecutionMode", "GraphOptimizationLevel", "RunOptions", "SessionOptions"]

STRICT_KEY = "session.disable_cpu_ep_fallback"


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


class SessionOptions:
    """Options for :class:`~onnxep.InferenceSession`, with onnxruntime's attribute names."""

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
        self._config: dict[str, str] = {}

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
