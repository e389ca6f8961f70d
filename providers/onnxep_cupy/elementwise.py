"""Elementwise kernels: one table row per op, each running its :mod:`codegen` template.

Float tensors go through the op's expression template (a one-node fused kernel), so the
per-node path and the fused path compute the same text; integer and bool tensors (shape
arithmetic, masks) use the array module's ufuncs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep_cupy._backend import xp_of
from onnxep_cupy._fused import run_spec
from onnxep_cupy._registry import ANY_TENSOR, FLOATS, FLOATS_AND_INTS, INTS, kernels
from onnxep_cupy.codegen import OPS, EwNode, FusedKernelSpec, fuse_tree

__all__ = ["ONNX_DTYPES", "float_ops", "run_single"]

_FLOAT_NAMES = frozenset(FLOATS)


@functools.lru_cache(maxsize=4096)
def _single_spec(
    op_type: str,
    present: tuple[int, ...],
    n: int,
    attrs: tuple[tuple[str, Any], ...],
    dtypes: tuple[tuple[str, str], ...],
) -> FusedKernelSpec:
    names = tuple(f"x{i}" if i in present else "" for i in range(n))
    return fuse_tree(EwNode(op_type, names, "y", dict(attrs)), dtypes=dict(dtypes))


def run_single(op_type: str, inputs: Sequence[Any], attrs: dict[str, Any]) -> Any:
    """One elementwise node on float tensors, through its expression template."""
    template = OPS[op_type]
    present = tuple(i for i, x in enumerate(inputs) if x is not None)
    floats = [i for i in present if template.kind_of(i) == "f"]
    t = np.dtype(inputs[floats[0]].dtype)
    dtypes = tuple(
        (f"x{i}", np.dtype(inputs[i].dtype).name) for i in floats if np.dtype(inputs[i].dtype) != t
    )
    spec = _single_spec(op_type, present, len(inputs), tuple(sorted(attrs.items())), dtypes)
    by_name = {f"x{i}": inputs[i] for i in present}
    return run_spec(spec, *(by_name[name] for name in spec.inputs))


def _is_float(x: Any) -> bool:
    return np.dtype(x.dtype).name in _FLOAT_NAMES


def _int_div(a: Any, b: Any) -> Any:
    xp = xp_of(a, b)
    return (a - xp.fmod(a, b)) // b  # truncation toward zero, as C and ONNX divide ints


_INT_FUNCS: dict[str, Callable[[Any, Any], Any]] = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": _int_div,
}


def _kernel_fn(op_type: str, inputs: Sequence[str], optional: int, variadic: bool) -> Any:
    """A kernel with the schema's signature for ``op_type`` (``optional``: trailing inputs)."""
    defaults = dict(OPS[op_type].defaults)
    int_fn = _INT_FUNCS.get(op_type)

    def kernel(*args: Any, **attrs: Any) -> Any:
        first = next(a for a in args if a is not None and a.dtype != np.bool_)
        if int_fn is not None and not _is_float(first):
            return int_fn(*args)
        return run_single(op_type, args, {**defaults, **attrs})

    P = inspect.Parameter
    params = (
        [P(inputs[0], P.VAR_POSITIONAL)]
        if variadic
        else [
            P(
                name,
                P.POSITIONAL_OR_KEYWORD,
                default=None if i >= len(inputs) - optional else P.empty,
            )
            for i, name in enumerate(inputs)
        ]
    )
    params += [P(k, P.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    kernel.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    kernel.__name__ = kernel.__qualname__ = op_type.lower()
    kernel.__doc__ = f"ONNX {op_type} on float tensors through its fused-kernel template."
    return kernel


def _pow_check(info: NodeInfo) -> str | None:
    base, exponent = info.input_type(0).dtype, info.input_type(1).dtype
    if base is None or base.name not in _FLOAT_NAMES:
        return f"base is {base}; kernel takes float16, float32"
    if exponent is None or exponent.name not in (*FLOATS, *INTS):
        return f"exponent is {exponent}; kernel takes float16, float32, int32, int64"
    return None


#: op: (input names, trailing optional inputs, variadic, versions, dtypes)
_TABLE: dict[str, tuple[tuple[str, ...], int, bool, tuple[int, ...], Sequence[str] | None]] = {
    "Add": (("A", "B"), 0, False, (7, 13, 14), FLOATS_AND_INTS),
    "Sub": (("A", "B"), 0, False, (7, 13, 14), FLOATS_AND_INTS),
    "Mul": (("A", "B"), 0, False, (7, 13, 14), FLOATS_AND_INTS),
    "Div": (("A", "B"), 0, False, (7, 13, 14), FLOATS_AND_INTS),
    "Pow": (("X", "Y"), 0, False, (7, 12, 13, 15), None),
    "Max": (("data_0",), 0, True, (8, 12, 13), FLOATS),
    "Min": (("data_0",), 0, True, (8, 12, 13), FLOATS),
    "Sum": (("data_0",), 0, True, (8, 13), FLOATS),
    "Mean": (("data_0",), 0, True, (8, 13), FLOATS),
    "Relu": (("X",), 0, False, (6, 13, 14), FLOATS),
    "Erf": (("input",), 0, False, (9, 13), FLOATS),
    "Sign": (("input",), 0, False, (9, 13), FLOATS),
    "Round": (("X",), 0, False, (11, 22), FLOATS),
    "Sin": (("input",), 0, False, (7, 22), FLOATS),
    "Cos": (("input",), 0, False, (7, 22), FLOATS),
    "LeakyRelu": (("X",), 0, False, (6, 16), FLOATS),
    "PRelu": (("X", "slope"), 0, False, (7, 9, 16), FLOATS),
    "Elu": (("X",), 0, False, (6, 22), FLOATS),
    "Selu": (("X",), 0, False, (6, 22), FLOATS),
    "HardSigmoid": (("X",), 0, False, (6, 22), FLOATS),
    "HardSwish": (("X",), 0, False, (14, 22), FLOATS),
    "Softplus": (("X",), 0, False, (1, 22), FLOATS),
    "Mish": (("X",), 0, False, (18, 22), FLOATS),
    "Gelu": (("X",), 0, False, (20,), FLOATS),
    "Clip": (("input", "min", "max"), 2, False, (11, 12, 13), FLOATS),
}
for _op in ("Abs", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Sigmoid"):
    _TABLE[_op] = (("X",), 0, False, (6, 13), FLOATS)
for _op in ("Exp", "Log", "Tanh"):
    _TABLE[_op] = (("input",), 0, False, (6, 13), FLOATS)

for _op, (_inputs, _optional, _variadic, _versions, _dtypes) in _TABLE.items():
    kernels.register(
        _op, versions=_versions, dtypes=_dtypes, check=_pow_check if _op == "Pow" else None
    )(_kernel_fn(_op, _inputs, _optional, _variadic))


@kernels.register("Clip", versions=(6,), dtypes=FLOATS)
def clip_6(
    input: Any, *, max: float = 3.4028234663852886e38, min: float = -3.4028234663852886e38
) -> Any:
    """Clip-6: the bounds are attributes."""
    return run_single("Clip", (input,), {"min": min, "max": max})


def float_ops() -> frozenset[str]:
    """The op types whose float nodes may be fused (every row of the template table)."""
    return frozenset(OPS)


# --- bool results, selection, casts: the array module's own functions ----------------------
_COMPARE = {
    "Less": ((7, 9, 13), "less"),
    "Greater": ((7, 9, 13), "greater"),
    "LessOrEqual": ((12, 16), "less_equal"),
    "GreaterOrEqual": ((12, 16), "greater_equal"),
    "Equal": ((11, 13), "equal"),
}


def _compare(name: str) -> Callable[[Any, Any], Any]:
    def kernel(A: Any, B: Any) -> Any:
        return getattr(xp_of(A, B), name)(A, B)

    kernel.__name__ = name
    return kernel


for _op, (_versions, _name) in _COMPARE.items():
    kernels.register(_op, versions=_versions, dtypes=(*FLOATS_AND_INTS, "bool"))(_compare(_name))


@kernels.register("Not", versions=(1,), dtypes=("bool",))
def not_(X: Any) -> Any:
    """Logical not."""
    return xp_of(X).logical_not(X)


@kernels.register("And", versions=(7,), dtypes=("bool",))
def and_(A: Any, B: Any) -> Any:
    """Logical and, broadcasting."""
    return xp_of(A, B).logical_and(A, B)


@kernels.register("Or", versions=(7,), dtypes=("bool",))
def or_(A: Any, B: Any) -> Any:
    """Logical or, broadcasting."""
    return xp_of(A, B).logical_or(A, B)


@kernels.register("Where", versions=(9, 16), dtypes=ANY_TENSOR)
def where(condition: Any, X: Any, Y: Any) -> Any:
    """Select from X where the condition holds, else from Y (float nodes are also fused)."""
    return xp_of(condition, X, Y).where(condition, X, Y)


#: TensorProto element types the kernels convert to (kernels never import onnx.helper).
ONNX_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("float32"),
    2: np.dtype("uint8"),
    3: np.dtype("int8"),
    4: np.dtype("uint16"),
    5: np.dtype("int16"),
    6: np.dtype("int32"),
    7: np.dtype("int64"),
    9: np.dtype("bool"),
    10: np.dtype("float16"),
    11: np.dtype("float64"),
    12: np.dtype("uint32"),
    13: np.dtype("uint64"),
}


def _cast_check(info: NodeInfo) -> str | None:
    to = info.attrs.get("to")
    if to not in ONNX_DTYPES:
        return f"Cast to element type {to} is not supported"
    return None


@kernels.register("Cast", versions=(6, 9, 13), dtypes=ANY_TENSOR, check=_cast_check)
def cast(input: Any, *, to: int) -> Any:
    """Convert the element type (float to int truncates toward zero)."""
    return input.astype(ONNX_DTYPES[to], copy=False)


@kernels.register("Cast", versions=(19, 21, 23), dtypes=ANY_TENSOR, check=_cast_check)
def cast_19(input: Any, *, to: int, saturate: int = 1) -> Any:
    """Cast-19+: ``saturate`` only concerns float8 targets, which are declined."""
    return input.astype(ONNX_DTYPES[to], copy=False)


@kernels.register("Identity", versions=(13, 14, 16, 19, 21, 23, 24, 25), dtypes=ANY_TENSOR)
def identity(input: Any) -> Any:
    """The input itself (values are never mutated in place, so no copy is needed)."""
    return input
