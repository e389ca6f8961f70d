"""Errors with onnxruntime's class names, so ``except`` clauses written for it keep working.

onnxruntime raises ``onnxruntime.capi.onnxruntime_pybind11_state.<Name>``; onnxep raises
``onnxep.errors.<Name>``. Every class derives from :class:`OnnxepError` (a ``RuntimeError``,
as onnxruntime's are), and the message starts with onnxruntime's status code in brackets.
"""

from __future__ import annotations

__all__ = [
    "EPFail",
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NotImplemented",
    "OnnxepError",
]


class OnnxepError(RuntimeError):
    """Base class of every error onnxep raises on purpose."""

    code = "FAIL"

    def __init__(self, message: str) -> None:
        super().__init__(f"[ONNXRuntimeError] : {self.code} : {message}")
        self.detail = message


class Fail(OnnxepError):
    """A kernel or the runtime failed while running a valid model."""

    code = "FAIL"


class InvalidArgument(OnnxepError):
    """The caller passed something wrong: a feed, an output name, an option."""

    code = "INVALID_ARGUMENT"


class NoSuchFile(OnnxepError):
    """A model or external-data file does not exist or may not be read."""

    code = "NO_SUCHFILE"


class InvalidProtobuf(OnnxepError):
    """The bytes are not a parsable ONNX model."""

    code = "INVALID_PROTOBUF"


class InvalidGraph(OnnxepError):
    """The model parses but is not a valid graph (checker, types, cycles, names)."""

    code = "INVALID_GRAPH"


class NotImplemented(OnnxepError):
    """No provider, the reference path included, can run some node."""

    code = "NOT_IMPLEMENTED"


class EPFail(OnnxepError):
    """An execution provider failed in a way onnxep could not recover from."""

    code = "EP_FAIL"
