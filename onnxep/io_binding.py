"""Device-resident inputs and outputs: onnxruntime's ``IOBinding`` over an onnxep session.

Inputs may be bound from host arrays, device arrays (CuPy, or anything with
``__cuda_array_interface__`` / ``__dlpack__``) or raw pointers; outputs bound to ``"cuda"``
come back as device arrays, never copied to the host; outputs bound to ``"cpu"`` as numpy.
The session then runs a second plan, built on first use with ``outputs_on_device=True``
(each output is returned where it was produced) and ``device_feeds=True`` (a device feed is
copied with :func:`host_value` before a host provider reads it). ``session.run`` uses the
same kind of plan, with outputs copied to the host, when a feed is a device array.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxep import errors
from onnxep.errors import InvalidArgument

if TYPE_CHECKING:
    from onnxep.plan import Plan, TransferStats
    from onnxep.session import InferenceSession

__all__ = [
    "IOBinding",
    "host_value",
    "is_device_array",
    "run_device_feeds",
    "run_with_iobinding",
]

_DEVICES = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}


def is_device_array(value: Any) -> bool:
    """Whether ``value`` is an array in device memory (CUDA array interface or DLPack only)."""
    if value is None or isinstance(value, (np.ndarray, np.generic)):
        return False
    return hasattr(value, "__cuda_array_interface__") or (
        hasattr(value, "__dlpack__") and not hasattr(value, "__array__")
    )


def host_value(value: Any, stats: TransferStats | None = None) -> Any:
    """``value`` in host memory: numpy and other host values unchanged, device arrays copied."""
    if not is_device_array(value):
        return value
    try:
        import cupy

        result = cupy.asnumpy(cupy.asarray(value))
    except ImportError:
        try:
            result = np.from_dlpack(value)
        except Exception as exc:
            raise InvalidArgument(
                f"cannot copy a {type(value).__name__} to the host without cupy: {exc}"
            ) from exc
    if stats is not None:
        stats.record(result)
    return result


def _device_of(device_type: str) -> str:
    device = _DEVICES.get(str(device_type).lower())
    if device is None:
        raise InvalidArgument(f"unknown device_type {device_type!r}; use 'cpu' or 'cuda'")
    return device


def _from_pointer(
    device: str, device_id: int, element_type: Any, shape: Sequence[int], ptr: int
) -> Any:
    dtype = np.dtype(element_type)
    shape = tuple(int(d) for d in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if device == "cpu":
        buffer = (ctypes.c_char * nbytes).from_address(ptr)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)
    import cupy

    memory = cupy.cuda.UnownedMemory(ptr, nbytes, None, device_id)
    return cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(memory, 0))


class IOBinding:
    """Inputs and output placements for :meth:`InferenceSession.run_with_iobinding`."""

    def __init__(self, session: InferenceSession) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: dict[str, tuple[str, int]] = {}
        self._results: list[Any] = []

    def bind_cpu_input(self, name: str, arr_on_cpu: Any) -> None:
        """Bind a host array (kept by reference, not copied)."""
        self._inputs[name] = np.asarray(arr_on_cpu)

    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int = 0,
        element_type: Any = None,
        shape: Sequence[int] | None = None,
        buffer_ptr: Any = None,
    ) -> None:
        """Bind an input: ``buffer_ptr`` is an array, or a raw pointer with its type and shape."""
        device = _device_of(device_type)
        if buffer_ptr is None:
            raise InvalidArgument(f"bind_input({name!r}): buffer_ptr is required")
        if isinstance(buffer_ptr, int):
            if element_type is None or shape is None:
                raise InvalidArgument(
                    f"bind_input({name!r}): a raw pointer needs element_type and shape"
                )
            buffer_ptr = _from_pointer(device, device_id, element_type, shape, buffer_ptr)
        self._inputs[name] = host_value(buffer_ptr) if device == "cpu" else buffer_ptr

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Sequence[int] | None = None,
        buffer_ptr: Any = None,
    ) -> None:
        """Ask for an output on ``device_type``; onnxep allocates it (no ``buffer_ptr``)."""
        if buffer_ptr is not None:
            raise errors.NotImplemented(
                f"bind_output({name!r}): preallocated output buffers are not supported; "
                "onnxep allocates outputs (read them with get_outputs())"
            )
        if name not in self._session._graph.outputs:
            raise InvalidArgument(
                f"Invalid output name: {name!r}; the model's outputs are "
                f"{list(self._session._graph.outputs)}"
            )
        self._outputs[name] = (_device_of(device_type), int(device_id))

    def bind_ortvalue_input(self, name: str, ortvalue: Any) -> None:
        """Not provided: onnxep has no OrtValue; bind arrays with ``bind_input``."""
        raise errors.NotImplemented("onnxep has no OrtValue; use bind_input with an array")

    def bind_ortvalue_output(self, name: str, ortvalue: Any) -> None:
        """Not provided: onnxep has no OrtValue; use ``bind_output``."""
        raise errors.NotImplemented("onnxep has no OrtValue; use bind_output")

    def get_outputs(self) -> list[Any]:
        """The last run's bound outputs, in binding order, where they were bound."""
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[Any]:
        """The last run's bound outputs as numpy arrays."""
        return [host_value(v) for v in self._results]

    def clear_binding_inputs(self) -> None:
        """Forget every bound input."""
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        """Forget every bound output (and the last results)."""
        self._outputs.clear()
        self._results = []

    def synchronize_inputs(self) -> None:
        """Inputs are read in stream order: nothing to wait for."""

    def synchronize_outputs(self) -> None:
        """Wait until device outputs are computed (kernels run asynchronously)."""
        for value in self._results:
            if is_device_array(value) and hasattr(value, "device"):
                device = value.device
                if hasattr(device, "synchronize"):
                    device.synchronize()


_plans: weakref.WeakKeyDictionary[Any, dict[bool, tuple[Plan, Plan]]] = weakref.WeakKeyDictionary()


def _device_plan(session: InferenceSession, outputs_on_device: bool) -> Plan:
    """The session's plan rebuilt for device feeds (cached until the session rebuilds)."""
    from onnxep.plan import build_plan

    cached = _plans.setdefault(session, {}).get(outputs_on_device)
    if cached is not None and cached[0] is session._plan:
        return cached[1]
    plan = build_plan(
        session._graph,
        session._providers,
        exclude=session._excluded,
        outputs_on_device=outputs_on_device,
        device_feeds=True,
    )
    _plans[session][outputs_on_device] = (session._plan, plan)
    return plan


def run_device_feeds(session: InferenceSession, args: Sequence[Any]) -> tuple[Any, ...]:
    """``session.run`` when a feed is a device array: host providers get host copies of it."""
    plan = _device_plan(session, outputs_on_device=False)
    plan.stats.count = plan.stats.bytes = 0
    outputs = plan.run(*args)
    _report(session, plan)
    return outputs


def _report(session: InferenceSession, plan: Plan) -> None:
    """``session.plan.stats`` tells the copies of the last run, whichever plan ran it."""
    session.plan.stats.count, session.plan.stats.bytes = plan.stats.count, plan.stats.bytes


def _place(session: InferenceSession, name: str, value: Any, device: str) -> Any:
    if device == "cpu":
        return host_value(value)
    if is_device_array(value):
        return value
    for provider in session._providers:
        if provider.device == device:
            return provider.to_device(value)
    raise InvalidArgument(
        f"output {name!r} is bound to {device!r} but no provider of this session runs there "
        f"(providers: {[p.name for p in session._providers]})"
    )


def run_with_iobinding(session: InferenceSession, binding: IOBinding) -> None:
    """Run with the binding's inputs; store its outputs where they were bound."""
    from onnxep.feeds import check_feeds

    if not binding._outputs:
        raise InvalidArgument("run_with_iobinding: bind at least one output (bind_output)")
    graph = session._graph
    feeds = check_feeds(binding._inputs, session._feedable, session._overridable, graph.types)
    args = [feeds[n] if n in feeds else graph.initializers[n] for n in graph.inputs]
    plan = _device_plan(session, outputs_on_device=True)
    plan.stats.count = plan.stats.bytes = 0
    outputs = dict(zip(graph.outputs, plan.run(*args), strict=True))
    _report(session, plan)
    binding._results = [
        _place(session, name, outputs[name], device)
        for name, (device, _) in binding._outputs.items()
    ]
