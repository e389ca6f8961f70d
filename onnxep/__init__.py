"""onnxep: run ONNX models across pluggable hardware execution providers.

The session API is onnxruntime's::

    import onnxep as ort
    session = ort.InferenceSession("model.onnx", providers=["numba", "reference"])
    outputs = session.run(None, {"input": array})
    print(session.explain())

Importing onnxep imports no provider, numba or cupy.
"""

from __future__ import annotations

from onnxep.discovery import (
    get_all_providers,
    get_available_providers,
    register_provider,
    unregister_provider,
)
from onnxep.errors import (
    EPFail,
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
    NotImplemented,
    OnnxepError,
)
from onnxep.graph import Graph, Node, NodeInfo, ValueType
from onnxep.io_binding import IOBinding
from onnxep.metadata import ModelMetadata, NodeArg
from onnxep.options import (
    ExecutionMode,
    ExecutionOrder,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
    set_default_logger_severity,
    set_default_logger_verbosity,
)
from onnxep.ort_value import OrtValue, copy_tensors
from onnxep.provider import Provider, Segment, Support
from onnxep.registry import Kernel, KernelRegistry, OpKey, resolve_key
from onnxep.session import InferenceSession

__version__ = "0.1.0"

__all__ = [
    "EPFail",
    "ExecutionMode",
    "ExecutionOrder",
    "Fail",
    "Graph",
    "GraphOptimizationLevel",
    "IOBinding",
    "InferenceSession",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "Kernel",
    "KernelRegistry",
    "ModelMetadata",
    "NoSuchFile",
    "Node",
    "NodeArg",
    "NodeInfo",
    "NotImplemented",
    "OnnxepError",
    "OpKey",
    "OrtValue",
    "Provider",
    "RunOptions",
    "Segment",
    "SessionOptions",
    "Support",
    "ValueType",
    "__version__",
    "copy_tensors",
    "get_all_providers",
    "get_available_providers",
    "get_build_info",
    "get_device",
    "get_version_string",
    "register_provider",
    "resolve_key",
    "set_default_logger_severity",
    "set_default_logger_verbosity",
    "unregister_provider",
]


def get_device() -> str:
    """``"GPU"`` when a GPU provider is available, else ``"CPU"`` (onnxruntime's function)."""
    from onnxep.discovery import entries

    entry = entries().get("CuPyExecutionProvider")
    return "GPU" if entry is not None and entry.availability() else "CPU"


def get_version_string() -> str:
    """onnxep's version (onnxruntime's function returns its own)."""
    return __version__


def get_build_info() -> str:
    """What this onnxep runs on: its version, numpy's and onnx's."""
    import numpy
    import onnx

    return f"onnxep {__version__} (numpy {numpy.__version__}, onnx {onnx.__version__})"
