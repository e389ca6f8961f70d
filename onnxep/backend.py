"""onnx's backend API (``onnx.backend.base.Backend``) over :class:`onnxep.InferenceSession`.

So ``onnx.backend.test.BackendTest(onnxep.backend, __name__)`` runs, and code written for
that API (``backend.prepare(model).run(inputs)``) works unchanged::

    import onnxep.backend as backend
    rep = backend.prepare(model, "CPU")
    outputs = rep.run([x])          # a tuple, also readable by output name

Devices map to providers: ``CPU`` runs the CPU chain (C++, numba, reference, whichever are
available); ``CUDA`` puts the CuPy provider first and is supported only where it can run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend as _OnnxBackend
from onnx.backend.base import BackendRep as _OnnxBackendRep
from onnx.backend.base import Device, DeviceType, namedtupledict

from onnxep.discovery import get_available_providers
from onnxep.errors import InvalidArgument
from onnxep.session import InferenceSession

__all__ = [
    "Backend",
    "BackendRep",
    "is_compatible",
    "prepare",
    "run_model",
    "run_node",
    "supports_device",
]

_CPU_CHAIN = ("CPUExecutionProvider",)
_CUDA_CHAIN = ("CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDER = "CuPyExecutionProvider"


class BackendRep(_OnnxBackendRep):
    """A prepared model: ``run(inputs)`` returns the outputs in graph order."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self.input_names = [arg.name for arg in session.get_inputs()]
        self.output_names = [arg.name for arg in session.get_outputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Run on ``inputs``: a list in input order, a dict by name, or one array."""
        feeds = self._feeds(inputs)
        outputs = self.session.run(None, feeds)
        return namedtupledict("Outputs", self.output_names)(*outputs)  # type: ignore[no-any-return]

    def _feeds(self, inputs: Any) -> dict[str, Any]:
        if isinstance(inputs, Mapping):
            return dict(inputs)
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if len(inputs) != len(self.input_names):
            raise InvalidArgument(
                f"the model takes {len(self.input_names)} input(s) {self.input_names}, "
                f"got {len(inputs)}"
            )
        return dict(zip(self.input_names, inputs))


def _device_type(device: str | Device) -> DeviceType:
    if isinstance(device, Device):
        return device.type
    return Device(device).type


def _providers_for(device: str | Device) -> tuple[str, ...]:
    if _device_type(device) == DeviceType.CUDA:
        return _CUDA_CHAIN
    return _CPU_CHAIN


class Backend(_OnnxBackend):
    """onnxep as an onnx backend."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """CPU always; CUDA when the CuPy provider is installed and has a usable GPU."""
        kind = _device_type(device)
        if kind == DeviceType.CPU:
            return True
        return kind == DeviceType.CUDA and _GPU_PROVIDER in get_available_providers()

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """Whether the device is supported (every op runs, on the reference path if need be)."""
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> BackendRep:
        """Build a session for ``model`` (ModelProto, bytes or path) on ``device``.

        ``providers=[...]`` overrides the device's provider chain; other keyword arguments
        (onnx's test runner passes ``rtol``/``atol``) are ignored.
        """
        if not cls.supports_device(device):
            raise InvalidArgument(f"device {device!r} is not available to onnxep here")
        providers = kwargs.get("providers") or list(_providers_for(device))
        return BackendRep(InferenceSession(model, providers=providers))

    @classmethod
    def run_model(
        cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[Any, ...]:
        """Prepare and run once."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """Run one node on numpy inputs (a list in the node's input order, or a dict).

        ``opset_version`` (default: the installed onnx's) sets the node's opset.
        """
        names = [n for n in node.input if n]
        if isinstance(inputs, Mapping):
            values = [inputs[n] for n in names]
        else:
            values = list(inputs)
        model = _node_model(node, names, values, outputs_info, kwargs.get("opset_version"))
        return cls.prepare(model, device, **kwargs).run(values)


def _node_model(
    node: onnx.NodeProto,
    names: list[str],
    values: list[Any],
    outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None,
    opset: int | None,
) -> onnx.ModelProto:
    """A one-node model typed from the values given (outputs from ``outputs_info`` or inference)."""
    from onnx import helper

    if len(values) != len(names):
        raise InvalidArgument(f"node {node.op_type} has {len(names)} inputs, got {len(values)}")
    graph_inputs = [_value_info(n, v) for n, v in zip(names, values)]
    domain = "" if node.domain == "ai.onnx" else node.domain
    imports = [helper.make_opsetid("", onnx.defs.onnx_opset_version())]
    if domain:
        imports.append(helper.make_opsetid(domain, opset or 1))
    elif opset:
        imports = [helper.make_opsetid("", opset)]
    inferred = _infer_outputs(node, graph_inputs, imports)
    graph_outputs = []
    for i, name in enumerate(o for o in node.output if o):
        if outputs_info is not None and i < len(outputs_info):
            dtype, shape = outputs_info[i]
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
            graph_outputs.append(helper.make_tensor_value_info(name, elem, shape))
        elif name in inferred:
            graph_outputs.append(helper.make_value_info(name, inferred[name]))
        else:
            raise InvalidArgument(f"cannot infer the type of output {name!r}; pass outputs_info")
    graph = helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs, graph_outputs)
    ir_version = max(helper.find_min_ir_version_for(imports), 7)
    return helper.make_model(graph, opset_imports=imports, ir_version=ir_version)


def _infer_outputs(
    node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], imports: list[onnx.OperatorSetIdProto]
) -> dict[str, onnx.TypeProto]:
    version = {i.domain: i.version for i in imports}.get(node.domain, 1)
    try:
        schema = onnx.defs.get_schema(node.op_type, version, node.domain)
        types = {i.name: i.type for i in inputs}
        return dict(onnx.shape_inference.infer_node_outputs(schema, node, types))
    except (onnx.defs.SchemaError, onnx.shape_inference.InferenceError, RuntimeError):
        return {}


def _value_info(name: str, value: Any) -> onnx.ValueInfoProto:
    """A tensor, or a sequence of tensors for a list."""
    from onnx import helper

    if isinstance(value, list):
        elem = np.asarray(value[0]).dtype if value else np.dtype(np.float32)
        seq = helper.make_tensor_sequence_value_info(
            name, helper.np_dtype_to_tensor_dtype(elem), None
        )
        return seq
    dtype = np.asarray(value).dtype
    elem = (
        onnx.TensorProto.STRING if dtype.kind in "OUS" else helper.np_dtype_to_tensor_dtype(dtype)
    )
    return helper.make_tensor_value_info(name, elem, None)


prepare = Backend.prepare
run_model = Backend.run_model
run_node = Backend.run_node
supports_device = Backend.supports_device
is_compatible = Backend.is_compatible
