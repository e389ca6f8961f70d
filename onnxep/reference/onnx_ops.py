"""The long tail: onnx's own reference ops (``onnx.reference.ops``) adapted as kernels.

Each node gets one instance of onnx's ``OpRun`` class, built when the plan is built (so its
attributes are parsed once). Ops onnx implements only through a schema function body, and
context-dependent function bodies, run through ``onnx.reference.ReferenceEvaluator``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun, RuntimeContextError

from onnxep.graph import NodeInfo
from onnxep.registry import Kernel, OpKey, is_multi_output

__all__ = ["onnx_kernel", "onnx_op"]

_LOADERS = {
    "ai.onnx.ml": "onnx.reference.ops.aionnxml",
    "ai.onnx.preview": "onnx.reference.ops.aionnx_preview",
    "ai.onnx.preview.training": "onnx.reference.ops.aionnx_preview_training",
    "experimental": "onnx.reference.ops.experimental",
}


def _load_class(info: NodeInfo) -> Any:
    """onnx's implementation class for a node, or raise NotImplementedError."""
    node = info.node
    version = info.graph.opsets[node.domain]
    if node.domain == "":
        from onnx.reference.ops import load_op

        try:
            return load_op("", node.op_type, version, evaluator_cls=ReferenceEvaluator)
        except RuntimeContextError:
            types = [_type_proto(info, i) for i in range(info.n_inputs)]
            return load_op(
                "",
                node.op_type,
                version,
                node=node.proto,
                input_types=types,
                evaluator_cls=ReferenceEvaluator,
            )
    module = _LOADERS.get(node.domain)
    if module is None:
        raise NotImplementedError(f"unknown domain {node.domain!r}")
    import importlib

    return importlib.import_module(module).load_op(node.domain, node.op_type, version)


def _type_proto(info: NodeInfo, i: int) -> onnx.TypeProto:
    vt = info.input_type(i)
    if vt.dtype is None or vt.kind != "tensor":
        raise NotImplementedError(
            f"{info.op_type} needs the type of input {i} to build its function body"
        )
    elem = onnx.helper.np_dtype_to_tensor_dtype(vt.dtype)
    shape = None if vt.shape is None else list(vt.shape)
    return onnx.helper.make_tensor_type_proto(elem, shape)


@functools.lru_cache(maxsize=2048)
def _loadable(key: OpKey, opset: int) -> str | None:
    """None when onnx implements the op, else the reason (cached per schema version)."""
    from onnx.reference.ops import load_op

    if key.domain != "" and key.domain not in _LOADERS:
        return f"unknown domain {key.domain!r}"
    try:
        if key.domain == "":
            load_op("", key.op_type, opset, evaluator_cls=ReferenceEvaluator)
        else:
            import importlib

            importlib.import_module(_LOADERS[key.domain]).load_op(key.domain, key.op_type, opset)
    except RuntimeContextError:
        return None
    except (NotImplementedError, onnx.defs.SchemaError, ValueError, KeyError, RuntimeError) as exc:
        return str(exc).split("\n")[0]
    return None


def onnx_kernel(info: NodeInfo) -> Kernel | None:
    """A factory kernel running onnx's reference implementation of the node, or None."""
    key = info.node.key
    if _loadable(key, info.graph.opsets.get(key.domain, key.since_version)) is not None:
        return None
    return Kernel(key, _bind_onnx_op, factory=True)


_RUN_PARAMS: dict[str, Any] = {
    "log": lambda *args: None,
    "verbose": 0,
    "new_ops": {},
    "existing_functions": {},
    "evaluator_cls": ReferenceEvaluator,
}


def onnx_op(node: onnx.NodeProto, opset: int) -> Callable[..., tuple[Any, ...]]:
    """onnx's implementation of a default-domain ``node`` at ``opset``: a callable taking
    the inputs and returning the tuple of outputs (for kernels built on a standard op)."""
    from onnx.reference.ops import load_op

    cls = load_op("", node.op_type, opset, evaluator_cls=ReferenceEvaluator)
    return cls(node, {**_RUN_PARAMS, "opsets": {"": opset}}).run


def _bind_onnx_op(info: NodeInfo) -> Callable[..., Any]:
    cls = _load_class(info)
    params = {**_RUN_PARAMS, "opsets": dict(info.graph.opsets)}
    op: OpRun = cls(info.node.proto, params)
    run = op.run
    if _has_string_output(info):
        run = _strings_as_objects(run)
    if is_multi_output(info.node.key):
        return run

    def single(*args: Any) -> Any:
        return run(*args)[0]

    return single


def _has_string_output(info: NodeInfo) -> bool:
    outputs = info.node.outputs
    return any(info.output_type(i).dtype == object for i in range(len(outputs)))


def _strings_as_objects(run: Callable[..., Any]) -> Callable[..., Any]:
    """onnx returns some string tensors as numpy unicode arrays; onnxruntime uses object."""

    def wrapped(*args: Any) -> tuple[Any, ...]:
        return tuple(
            r.astype(object) if isinstance(r, np.ndarray) and r.dtype.kind == "U" else r
            for r in run(*args)
        )

    return wrapped
