"""Loading a model: path, bytes or ModelProto in; a checked, shape-inferred ModelProto out.

External data is read only from inside the model's folder: a ``location`` that escapes it
(absolute, through ``..``, or through a symlink) is refused. Model-local functions are
inlined so every node is an op some provider can run.
"""

from __future__ import annotations

import heapq
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import google.protobuf.message
import onnx
import onnx.checker
import onnx.inliner
import onnx.shape_inference
from google.protobuf.descriptor import FieldDescriptor
from onnx import external_data_helper

from onnxep.contrib_types import annotate_contrib_outputs
from onnxep.errors import InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile
from onnxep.graph import subgraphs
from onnxep.model_overrides import fix_free_dims, replace_initializers
from onnxep.ort_extensions import move_onnxruntime_extensions

__all__ = ["load_model"]

ModelSource = str | os.PathLike[str] | bytes | bytearray | memoryview | onnx.ModelProto


def load_model(
    source: Any,
    *,
    initializers: Mapping[str, Any] | None = None,
    dims: Mapping[tuple[str, str], int] | None = None,
) -> tuple[onnx.ModelProto, pathlib.Path | None]:
    """Load, check, inline and shape-infer a model; return it with its folder (or None).

    ``initializers`` replace the model's of those names and ``dims`` fix free input
    dimensions (see :mod:`onnxep.model_overrides`), before checking and shape inference.
    """
    model, folder = _read(source)
    if not model.HasField("graph") or model.ir_version == 0:
        raise InvalidProtobuf("the data is not an ONNX model (no ir_version or no graph)")
    _check_text(model)
    if initializers:
        replace_initializers(model, initializers)
    if dims:
        fix_free_dims(model, dims)
    if _has_external_data(model):
        if folder is None:
            raise InvalidArgument(
                "the model has tensors in external data files; load it from its path so "
                "onnxep knows the folder they live in"
            )
        _load_external_data(model, folder)
    _sort_nodes(model.graph)
    move_onnxruntime_extensions(model)
    _check(model)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    return _infer_shapes(model), folder


def _read(source: Any) -> tuple[onnx.ModelProto, pathlib.Path | None]:
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model, None
    if isinstance(source, bytes | bytearray | memoryview):
        return _parse(bytes(source), "the model bytes"), None
    if isinstance(source, str | os.PathLike):
        path = pathlib.Path(source)
        if not path.exists():
            raise NoSuchFile(f"Load model from {path} failed: file does not exist")
        if not path.is_file():
            raise NoSuchFile(f"Load model from {path} failed: not a regular file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NoSuchFile(f"Load model from {path} failed: {exc.strerror}") from exc
        return _parse(data, str(path)), path.resolve().parent
    raise InvalidArgument(
        f"a model must be a path, bytes or onnx.ModelProto, got {type(source).__name__}"
    )


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (google.protobuf.message.DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidProtobuf(
            f"{what} is not a valid ONNX protobuf ({len(data)} bytes): {exc}"
        ) from exc
    return model


_TEXT_OR_NESTED = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE)


def _check_text(message: google.protobuf.message.Message) -> None:
    """Refuse string fields that are not UTF-8 (python's protobuf hands them over as bytes)."""
    for field, value in message.ListFields():
        if field.type not in _TEXT_OR_NESTED:
            continue
        single = isinstance(value, str | bytes | google.protobuf.message.Message)
        for item in (value,) if single else value:
            if isinstance(item, google.protobuf.message.Message):
                _check_text(item)
            elif isinstance(item, bytes):
                raise InvalidProtobuf(
                    f"{message.DESCRIPTOR.name}.{field.name} is not valid UTF-8: {item[:40]!r}"
                )


def _tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return list(external_data_helper._get_all_tensors(model))


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(external_data_helper.uses_external_data(t) for t in _tensors(model))


def _load_external_data(model: onnx.ModelProto, folder: pathlib.Path) -> None:
    root = folder.resolve()
    for tensor in _tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        location = info.location
        target = (root / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(root):
            raise InvalidGraph(
                f"tensor {tensor.name!r} has external data at {location!r}, which is outside "
                f"the model's folder {root}; onnxep reads external data only inside it"
            )
        if not target.is_file():
            raise NoSuchFile(
                f"tensor {tensor.name!r}: external data file {location!r} does not exist in {root}"
            )
        size = target.stat().st_size
        end = (info.offset or 0) + (info.length or 0)
        if end > size:
            raise InvalidGraph(
                f"tensor {tensor.name!r}: external data {location!r} has {size} bytes, "
                f"offset+length asks for {end}"
            )
        with target.open("rb") as handle:
            handle.seek(info.offset or 0)
            data = handle.read(info.length) if info.length else handle.read()
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every name a node reads, those read inside its subgraphs included."""
    names = {x for x in node.input if x}
    for sub in subgraphs(node):
        for inner in sub.node:
            names |= _reads(inner)
    return names


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Put nodes in topological order, in place, keeping the given order where it is free.

    onnxruntime runs graphs whose nodes are listed out of order; onnx's checker and shape
    inference do not, so the loader sorts first. A cycle is left for the checker to report.
    """
    for node in graph.node:
        for sub in subgraphs(node):
            _sort_nodes(sub)
    produced = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    deps = [
        {produced[x] for x in _reads(n) if x in produced} - {i} for i, n in enumerate(graph.node)
    ]
    if all(j < i for i, d in enumerate(deps) for j in d):
        return
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    waiting = [len(d) for d in deps]
    ready = [i for i, n in enumerate(waiting) if n == 0]
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users.get(i, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) == len(deps):
        nodes = [onnx.NodeProto() for _ in order]
        for copy, i in zip(nodes, order):
            copy.CopyFrom(graph.node[i])
        del graph.node[:]
        graph.node.extend(nodes)


#: Checker complaints onnxruntime does not make either: the model still runs (a graph output
#: or value_info without a type is typed by inference, as onnxruntime does).
_BENIGN = (
    "Field 'shape' of 'type' is required but missing",
    "Field 'type' of 'value_info' is required but missing",
)


def _check(model: onnx.ModelProto, *, retry: bool = True) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(benign in first for benign in _BENIGN):
            untyped = [i.name for i in model.graph.input if not i.type.WhichOneof("value")]
            if untyped:  # onnxruntime's refusal too: nothing says what to feed
                raise InvalidGraph(f"graph input {untyped[0]!r} has no type") from exc
            if retry:  # the checker stopped there: check the rest on a copy without it
                _check(_with_shapes(model), retry=False)
            return
        raise InvalidGraph(f"the model fails onnx.checker: {first}") from exc
    except ValueError as exc:  # bytes python's protobuf took but onnx's C++ parser does not
        raise InvalidProtobuf(f"the model is not a valid ONNX protobuf: {exc}") from exc


def _with_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for the checker whose graph inputs/outputs of unknown rank carry an (empty)
    shape field, and whose untyped outputs and value_info carry a placeholder type."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for info in (*graph.input, *graph.output, *graph.value_info):
        if not info.type.WhichOneof("value"):
            info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        if info.type.HasField("tensor_type") and not info.type.tensor_type.HasField("shape"):
            info.type.tensor_type.shape.SetInParent()
    return copy


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = model
    for _ in range(1 + sum(n.domain == "com.microsoft" for n in model.graph.node)):
        try:
            inferred = onnx.shape_inference.infer_shapes(
                inferred, check_type=False, strict_mode=False
            )
        except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
            break  # types then come from the declarations and from run time
        if not annotate_contrib_outputs(inferred.graph):  # typed: infer again past them
            break
    _forget_invented_symbols(inferred.graph, _symbols(model.graph))
    return inferred


_INVENTED = re.compile(r"unk__\d+")


def _dims(graph: onnx.GraphProto) -> list[onnx.TensorShapeProto.Dimension]:
    infos = (*graph.input, *graph.output, *graph.value_info)
    tensors = [i.type.tensor_type for i in infos if i.type.HasField("tensor_type")]
    return [dim for tensor in tensors for dim in tensor.shape.dim]


def _symbols(graph: onnx.GraphProto) -> set[str]:
    return {d.dim_param for d in _dims(graph) if d.dim_param}


def _forget_invented_symbols(graph: onnx.GraphProto, original: set[str]) -> None:
    """Dims shape inference named ``unk__N`` are unknown (None), as onnxruntime reports them."""
    for dim in _dims(graph):
        if _INVENTED.fullmatch(dim.dim_param) and dim.dim_param not in original:
            dim.ClearField("dim_param")
