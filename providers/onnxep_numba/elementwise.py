"""Elementwise ONNX ops: each registered kernel runs a one-op fused program.

Inside a compiled segment these ops are fused with their neighbours (see
:mod:`onnxep_numba.compiler`); the kernels here are what a single node runs on its own.
Every kernel carries its :class:`~onnxep_numba._ewops.EwSpec` as ``kernel.ew_spec``, which
is how the segment compiler recognises it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.registry import since_versions
from onnxep_numba._ewops import ONNX_DTYPES, SPECS, EwSpec
from onnxep_numba._registry import (
    FLOATS,
    NUMERIC,
    SCALARS,
    all_checks,
    check_dtypes,
    f32,
    kernels,
)
from onnxep_numba.fusion import fused_kernel, single_op

__all__ = ["ew_kernel"]

SIGNED = (*FLOATS, "int8", "int16", "int32", "int64")


def ew_kernel(spec: EwSpec, inputs: Sequence[str], attrs: dict[str, Any]) -> Callable[..., Any]:
    """A kernel function with ONNX's signature that runs ``spec`` as a one-op program."""
    defaults = dict(attrs)

    def kernel(*args: Any, **kwargs: Any) -> Any:
        if spec.alias:  # Identity: a copy, nothing to compute
            return np.array(args[0], copy=True)
        full = {**defaults, **kwargs}
        dtypes = [None if a is None else np.asarray(a).dtype.name for a in args]
        while dtypes and dtypes[-1] is None:
            dtypes.pop()
        program = single_op(spec, dtypes, {k: full[k] for k in spec.attrs})
        outputs = fused_kernel(program)(*[a for a in args if a is not None])
        return outputs[0]

    kind = inspect.Parameter.POSITIONAL_ONLY
    params = [
        inspect.Parameter(name.rstrip("*"), inspect.Parameter.VAR_POSITIONAL)
        if name.endswith("*")
        else inspect.Parameter(name, kind, default=None if i else inspect.Parameter.empty)
        for i, name in enumerate(inputs)
    ]
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in attrs.items()
    ]
    kernel.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    kernel.__name__ = kernel.__qualname__ = spec.name
    kernel.__doc__ = f"ONNX {spec.name} as a one-op fused numba loop."
    kernel.ew_spec = spec  # type: ignore[attr-defined]
    return kernel


def _same_dtypes(info: NodeInfo) -> str | None:
    """Binary/variadic ops: every input has the output's dtype (ONNX's type constraint)."""
    dtypes = {info.input_type(i).dtype for i in range(info.n_inputs) if info.node.inputs[i]}
    if len(dtypes) > 1:
        return f"inputs have different dtypes: {sorted(str(d) for d in dtypes)}"
    return None


def _cast_check(info: NodeInfo) -> str | None:
    to = int(info.attrs.get("to", 0))
    if ONNX_DTYPES.get(to) is None:
        return f"Cast to element type {to} is not implemented"
    return None


def _reg(op: str, versions: Sequence[int], spec: str, dtypes: Sequence[str], **attrs: Any) -> None:
    s = SPECS[spec]
    check = all_checks(check_dtypes(range(8), dtypes), _same_dtypes) if s.out != "input1" else None
    kernels.register(op, versions=versions, check=check)(ew_kernel(s, s.inputs, attrs))


# --- arithmetic (numpy broadcasting from opset 7 on) -------------------------------------
_reg("Add", (7, 13, 14), "add", NUMERIC)
_reg("Sub", (7, 13, 14), "sub", NUMERIC)
_reg("Mul", (7, 13, 14), "mul", NUMERIC)
_reg("Div", (7, 13, 14), "div", FLOATS)
for _op, _spec in (("Max", "max"), ("Min", "min")):
    _reg(_op, (6, 8, 12, 13), _spec, NUMERIC)
_reg("Sum", (6, 8, 13), "sum", FLOATS)
_reg("Mean", (6, 8, 13), "mean", FLOATS)
kernels.register(
    "Pow",
    versions=(7, 12, 13, 15),
    check=all_checks(check_dtypes((0,), FLOATS), check_dtypes((1,), NUMERIC)),
)(ew_kernel(SPECS["pow"], SPECS["pow"].inputs, {}))

# --- activations -------------------------------------------------------------------------
_reg("Relu", (6, 13, 14), "relu", SIGNED)
_reg("LeakyRelu", (6, 16), "leaky_relu", FLOATS, alpha=f32(0.01))
_reg("Sigmoid", (6, 13), "sigmoid", FLOATS)
_reg("Tanh", (6, 13), "tanh", FLOATS)
_reg("Gelu", (20,), "gelu", FLOATS, approximate="none")
_reg("Erf", (9, 13), "erf", FLOATS)
_reg("HardSwish", (14, 22), "hard_swish", FLOATS)
_reg("HardSigmoid", (6, 22), "hard_sigmoid", FLOATS, alpha=f32(0.2), beta=0.5)
_reg("Clip", (6,), "clip6", FLOATS, min=-3.4028234663852886e38, max=3.4028234663852886e38)
_reg("Clip", (11, 12, 13), "clip", NUMERIC)
_reg("Softplus", since_versions("Softplus"), "softplus", FLOATS)
_reg("Elu", (6, 22), "elu", FLOATS, alpha=1.0)
_reg(
    "Selu",
    (6, 22),
    "selu",
    FLOATS,
    alpha=f32(1.67326319217681884765625),
    gamma=f32(1.05070102214813232421875),
)
_reg("ThresholdedRelu", (10, 22), "thresholded_relu", FLOATS, alpha=1.0)
_reg("PRelu", (7, 9, 16), "prelu", FLOATS)

# --- math --------------------------------------------------------------------------------
_reg("Abs", (6, 13), "abs", NUMERIC)
_reg("Neg", (6, 13), "neg", SIGNED)
for _op, _spec in (
    ("Exp", "exp"),
    ("Log", "log"),
    ("Sqrt", "sqrt"),
    ("Reciprocal", "reciprocal"),
    ("Floor", "floor"),
    ("Ceil", "ceil"),
):
    _reg(_op, (6, 13), _spec, FLOATS)
_reg("Sin", (7, 22), "sin", FLOATS)
_reg("Cos", (7, 22), "cos", FLOATS)
_reg("Sign", (9, 13), "sign", NUMERIC)

# --- logic and comparison ----------------------------------------------------------------
_reg("Not", (1,), "not", ("bool",))
for _op, _spec in (("And", "and"), ("Or", "or"), ("Xor", "xor")):
    _reg(_op, (7,), _spec, ("bool",))
_reg("Equal", (7, 11, 13, 19), "equal", (*NUMERIC, "bool"))
_reg("Less", (7, 9, 13), "less", NUMERIC)
_reg("Greater", (7, 9, 13), "greater", NUMERIC)
_reg("LessOrEqual", (12, 16), "less_or_equal", NUMERIC)
_reg("GreaterOrEqual", (12, 16), "greater_or_equal", NUMERIC)
_reg("IsNaN", (9, 13, 20), "isnan", FLOATS)
kernels.register(
    "Where",
    versions=(9, 16),
    check=all_checks(check_dtypes((0,), ("bool",)), check_dtypes((1, 2), SCALARS)),
)(ew_kernel(SPECS["where"], SPECS["where"].inputs, {}))

# --- conversions -------------------------------------------------------------------------
kernels.register(
    "Cast", versions=(6, 9, 13), check=all_checks(check_dtypes((0,), SCALARS), _cast_check)
)(ew_kernel(SPECS["cast"], ("input",), {"to": None}))
kernels.register(
    "Cast", versions=(19,), check=all_checks(check_dtypes((0,), SCALARS), _cast_check)
)(ew_kernel(SPECS["cast"], ("input",), {"saturate": 1, "to": None}))
kernels.register(
    "Cast",
    versions=since_versions("Cast", first=21),
    check=all_checks(check_dtypes((0,), SCALARS), _cast_check),
)(ew_kernel(SPECS["cast"], ("input",), {"round_mode": "up", "saturate": 1, "to": None}))
kernels.register(
    "Identity", versions=since_versions("Identity"), check=all_checks(check_dtypes((0,), SCALARS))
)(ew_kernel(SPECS["identity"], ("input",), {}))
