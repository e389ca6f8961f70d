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

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxep.blas_threads import capped
from onnxep.device_values import device_of, from_pointer, host_value, is_device_array
from onnxep.errors import InvalidArgument
from onnxep.ort_value import OrtValue, unwrap, write

if TYPE_CHECKING:
    from onnxep.plan import Plan
    from onnxep.session import InferenceSession

__all__ = ["IOBinding", "run_device_feeds", "run_with_iobinding"]


class IOBinding:
    """Inputs and output placements for :meth:`InferenceSession.run_with_iobinding`.

    An output is bound to a device (onnxep allocates it there) or to memory the caller owns
    (an OrtValue, or a raw pointer with its type and shape), which the run's result is
    copied into: the computed value must have the bound dtype and shape.
    """

    def __init__(self, session: InferenceSession) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: dict[str, tuple[str, Any]] = {}  # name -> (device, caller's buffer)
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
        device = device_of(device_type)
        if buffer_ptr is None:
            raise InvalidArgument(f"bind_input({name!r}): buffer_ptr is required")
        if isinstance(buffer_ptr, int):
            buffer_ptr = _pointed(name, device, device_id, element_type, shape, buffer_ptr)
        self._inputs[name] = host_value(buffer_ptr) if device == "cpu" else buffer_ptr

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        """Bind an OrtValue's value as an input, where it lives (not copied)."""
        self._inputs[name] = _held(name, ortvalue)

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Sequence[int] | None = None,
        buffer_ptr: Any = None,
    ) -> None:
        """Ask for an output on ``device_type`` (onnxep allocates it), or into the caller's
        memory at ``buffer_ptr`` (a raw pointer, with ``element_type`` and ``shape``)."""
        device = device_of(device_type)
        buffer = None
        if buffer_ptr is not None:
            buffer = _pointed(name, device, device_id, element_type, shape, buffer_ptr)
        self._bind_output(name, device, buffer)

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        """Have the run write this output into an OrtValue's tensor memory."""
        value = _held(name, ortvalue)
        if not hasattr(value, "shape"):
            raise InvalidArgument(f"bind_ortvalue_output({name!r}): the OrtValue holds no tensor")
        self._bind_output(name, "cuda" if is_device_array(value) else "cpu", value)

    def _bind_output(self, name: str, device: str, buffer: Any) -> None:
        if name not in self._session._graph.outputs:
            raise InvalidArgument(
                f"Invalid output name: {name!r}; the model's outputs are "
                f"{list(self._session._graph.outputs)}"
            )
        self._outputs[name] = (device, buffer)

    def get_outputs(self) -> list[OrtValue]:
        """The last run's bound outputs as OrtValues, in binding order, where they were bound."""
        return [OrtValue(v) for v in self._results]

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


def _pointed(
    name: str, device: str, device_id: int, element_type: Any, shape: Any, pointer: int
) -> Any:
    if element_type is None or shape is None:
        raise InvalidArgument(f"binding {name!r} to a raw pointer needs element_type and shape")
    return from_pointer(device, device_id, element_type, shape, pointer)


def _held(name: str, ortvalue: Any) -> Any:
    if not isinstance(ortvalue, OrtValue):
        raise InvalidArgument(
            f"binding {name!r}: expected an OrtValue, got {type(ortvalue).__name__}"
        )
    return unwrap(ortvalue)


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


def run_device_feeds(
    session: InferenceSession, args: Sequence[Any], outputs_on_device: bool = False
) -> tuple[Any, ...]:
    """Run with feeds that may be device arrays (host providers get host copies of them);
    outputs come back on the host, or where they were produced with ``outputs_on_device``."""
    plan = _device_plan(session, outputs_on_device)
    plan.stats.count = plan.stats.bytes = 0
    with capped(session._threads):
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
    if not binding._outputs:
        raise InvalidArgument("run_with_iobinding: bind at least one output (bind_output)")
    _, args = session._arguments(binding._inputs)
    outputs = dict(zip(session._graph.outputs, run_device_feeds(session, args, True), strict=True))
    binding._results = [
        _place(session, name, outputs[name], device)
        if buffer is None
        else _into(name, buffer, outputs[name])
        for name, (device, buffer) in binding._outputs.items()
    ]


def _into(name: str, buffer: Any, value: Any) -> Any:
    """``value`` copied into the caller's ``buffer`` (same dtype and shape), which is returned."""
    if np.dtype(value.dtype) != np.dtype(buffer.dtype) or tuple(value.shape) != tuple(buffer.shape):
        raise InvalidArgument(
            f"output {name!r} is bound to a {np.dtype(buffer.dtype)} buffer of shape "
            f"{list(buffer.shape)} but the run produced {np.dtype(value.dtype)} "
            f"{list(value.shape)}"
        )
    write(buffer, value)
    return buffer
