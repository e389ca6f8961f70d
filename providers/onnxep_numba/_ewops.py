"""Elementwise ops as code templates: each spec writes the scalar expression of one op.

A template receives an :class:`Emitter` (typed constants, temporaries), the operand
variables (``None`` for a missing optional input) and the attributes, and returns the
expression of one output element. :mod:`onnxep_numba.fusion` strings templates together
into one loop; :mod:`onnxep_numba.elementwise` registers each spec as an ONNX kernel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["ONNX_DTYPES", "EwSpec", "Emitter", "SPECS"]

#: TensorProto element types the generated kernels handle, as numpy dtype names.
ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    11: "float64",
    12: "uint32",
    13: "uint64",
}


class Emitter:
    """Collects the statements and constants of one generated loop body."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[tuple[str, str], str] = {}
        self.dtype = "float32"  # dtype of the value being emitted
        self._temps = 0

    def const(self, value: Any, dtype: str | None = None) -> str:
        """A module-level constant of ``dtype`` (default: the current output dtype)."""
        dtype = dtype or self.dtype
        if dtype == "bool":
            text = repr(bool(value))
        elif np.dtype(dtype).kind == "f":
            text = f"np.{dtype}(float.fromhex({float(value).hex()!r}))"
        else:
            text = f"np.{dtype}({int(value)})"
        key = (dtype, text)
        if key not in self.consts:
            self.consts[key] = f"_k{len(self.consts)}"
        return self.consts[key]

    def let(self, expr: str) -> str:
        """Bind ``expr`` to a fresh temporary and return its name."""
        name = f"_u{self._temps}"
        self._temps += 1
        self.lines.append(f"{name} = {expr}")
        return name

    def const_lines(self) -> list[str]:
        """``name = value`` lines for the module header."""
        return [f"{name} = {text}" for (_, text), name in self.consts.items()]


Template = Callable[[Emitter, list[Any], Mapping[str, Any]], str]


@dataclasses.dataclass(frozen=True, eq=False)
class EwSpec:
    """One elementwise op: inputs, attribute defaults, output dtype rule, template."""

    name: str
    inputs: tuple[str, ...]  # ONNX input names, schema order; "*" suffix: variadic
    template: Template
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    out: str = "same"  # "same" (input 0) | "bool" | "input1" | "cast"
    alias: bool = False  # output is input 0 itself (Identity, inference Dropout)

    @property
    def variadic(self) -> bool:
        """Whether the op takes any number of inputs."""
        return self.inputs[-1].endswith("*")

    def out_dtype(self, in_dtypes: list[str], attrs: Mapping[str, Any]) -> str:
        """The output dtype for these input dtypes."""
        if self.out == "bool":
            return "bool"
        if self.out == "input1":
            return in_dtypes[1]
        if self.out == "cast":
            return ONNX_DTYPES[int(attrs["to"])]
        return in_dtypes[0]

    def __repr__(self) -> str:
        return f"EwSpec({self.name})"


def _clamp(e: Emitter, v: str, lo: str | None, hi: str | None) -> str:
    """min(max(v, lo), hi) as numpy does it: NaN passes through, lo > hi gives hi."""
    if lo is not None:
        v = e.let(f"({lo} if {v} < {lo} else {v})")
    if hi is not None:
        v = f"({hi} if {v} > {hi} else {v})"
    return v


def _max(e: Emitter, args: list[str], _: Any) -> str:
    acc = args[0]
    for b in args[1:]:
        acc = e.let(f"({acc} if ({acc} >= {b} or {acc} != {acc}) else {b})")
    return acc


def _min(e: Emitter, args: list[str], _: Any) -> str:
    acc = args[0]
    for b in args[1:]:
        acc = e.let(f"({acc} if ({acc} <= {b} or {acc} != {acc}) else {b})")
    return acc


def _sigmoid(e: Emitter, a: list[str], _: Any) -> str:
    one = e.const(1)
    x = e.let(f"math.exp(-abs({a[0]}))")
    return f"({one} / ({one} + {x}) if {a[0]} >= 0 else {x} / ({one} + {x}))"


def _gelu(e: Emitter, a: list[str], at: Mapping[str, Any]) -> str:
    x, half, one = a[0], e.const(0.5), e.const(1)
    if at["approximate"] == "tanh":
        k, c = e.const(math.sqrt(2 / math.pi)), e.const(0.044715)
        return f"{half} * {x} * ({one} + math.tanh({k} * ({x} + {c} * {x} * {x} * {x})))"
    return f"{half} * {x} * ({one} + {_erf_expr(e, e.let(f'{x} * {e.const(1 / math.sqrt(2))}'))})"


#: Eigen's float32 erf: x * P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is +-1 in float32).
#: Arithmetic only, so the loop vectorizes; math.erf is a scalar libm call per element.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def _erf_expr(e: Emitter, x: str) -> str:
    if e.dtype != "float32":
        return f"math.erf({x})"
    c = _clamp(e, x, e.const(-4.0), e.const(4.0))
    c = e.let(c)
    x2 = e.let(f"{c} * {c}")
    p = e.const(_ERF_P[0])
    for k in _ERF_P[1:]:
        p = e.let(f"{x2} * {p} + {e.const(k)}")
    q = e.const(_ERF_Q[0])
    for k in _ERF_Q[1:]:
        q = e.let(f"{x2} * {q} + {e.const(k)}")
    return f"{c} * {p} / {q}"


def _softplus(e: Emitter, a: list[str], _: Any) -> str:
    x = a[0]
    return f"(max({x}, {e.const(0)}) + math.log1p(math.exp(-abs({x}))))"


def _sign(e: Emitter, a: list[str], _: Any) -> str:
    x, one, zero = a[0], e.const(1), e.const(0)
    neg = e.const(-1) if np.dtype(e.dtype).kind != "u" else zero
    return f"({one} if {x} > {zero} else ({neg} if {x} < {zero} else {x}))"


def _cast(e: Emitter, a: list[str], at: Mapping[str, Any]) -> str:
    if e.dtype == "bool":
        return f"({a[0]} != 0)"
    return a[0]


def _clip6(e: Emitter, a: list[str], at: Mapping[str, Any]) -> str:
    return _clamp(e, a[0], e.const(at["min"]), e.const(at["max"]))


def _f(text: str) -> Template:
    """A template from a format string over operands a, b, c and attributes."""

    def template(e: Emitter, args: list[Any], attrs: Mapping[str, Any]) -> str:
        names = dict(zip("abc", args))
        consts = {k: e.const(v) for k, v in attrs.items() if isinstance(v, float)}
        return text.format(**names, **consts, zero=e.const(0), one=e.const(1))

    return template


X = ("X",)
AB = ("A", "B")
_ALPHA = {"alpha": 0.01}

SPECS: dict[str, EwSpec] = {
    s.name: s
    for s in (
        EwSpec("add", AB, _f("{a} + {b}")),
        EwSpec("sub", AB, _f("{a} - {b}")),
        EwSpec("mul", AB, _f("{a} * {b}")),
        EwSpec("div", AB, _f("{a} / {b}")),
        EwSpec("pow", ("X", "Y"), lambda e, a, _: f"{a[0]} ** np.{e.dtype}({a[1]})"),
        EwSpec("max", ("data_0*",), _max),
        EwSpec("min", ("data_0*",), _min),
        EwSpec("sum", ("data_0*",), lambda e, a, _: " + ".join(a)),
        EwSpec("mean", ("data_0*",), lambda e, a, _: f"({' + '.join(a)}) / {e.const(len(a))}"),
        EwSpec("relu", X, _f("({zero} if {a} < {zero} else {a})")),
        EwSpec("leaky_relu", X, _f("({a} if {a} >= {zero} else {a} * {alpha})"), _ALPHA),
        EwSpec("sigmoid", X, _sigmoid),
        EwSpec("tanh", ("input",), _f("math.tanh({a})")),
        EwSpec("gelu", X, _gelu, {"approximate": "none"}),
        EwSpec("erf", ("input",), lambda e, a, _: _erf_expr(e, a[0])),
        EwSpec(
            "hard_swish",
            X,
            lambda e, a, _: (
                f"{a[0]} * "
                + _clamp(
                    e, e.let(f"{a[0]} * {e.const(1 / 6)} + {e.const(0.5)}"), e.const(0), e.const(1)
                )
            ),
        ),
        EwSpec(
            "hard_sigmoid",
            X,
            lambda e, a, at: _clamp(
                e,
                e.let(f"{a[0]} * {e.const(at['alpha'])} + {e.const(at['beta'])}"),
                e.const(0),
                e.const(1),
            ),
            {"alpha": 0.2, "beta": 0.5},
        ),
        EwSpec(
            "clip6",
            ("input",),
            _clip6,
            {"min": -3.4028234663852886e38, "max": 3.4028234663852886e38},
        ),
        EwSpec("clip", ("input", "min", "max"), lambda e, a, _: _clamp(e, *[*a, None, None][:3])),
        EwSpec("abs", X, _f("abs({a})")),
        EwSpec("neg", X, _f("-{a}")),
        EwSpec("exp", ("input",), _f("math.exp({a})")),
        EwSpec("log", ("input",), _f("math.log({a})")),
        EwSpec("sqrt", X, _f("math.sqrt({a})")),
        EwSpec("reciprocal", X, _f("{one} / {a}")),
        EwSpec("floor", X, _f("np.floor({a})")),
        EwSpec("ceil", X, _f("np.ceil({a})")),
        EwSpec("sin", ("input",), _f("math.sin({a})")),
        EwSpec("cos", ("input",), _f("math.cos({a})")),
        EwSpec("softplus", X, _softplus),
        EwSpec(
            "elu",
            X,
            _f("({a} if {a} >= {zero} else {alpha} * (math.exp({a}) - {one}))"),
            {"alpha": 1.0},
        ),
        EwSpec(
            "selu",
            X,
            _f("{gamma} * ({a} if {a} > {zero} else {alpha} * math.exp({a}) - {alpha})"),
            {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
        ),
        EwSpec("sign", ("input",), _sign),
        EwSpec("prelu", ("X", "slope"), _f("({a} if {a} >= {zero} else {a} * {b})")),
        EwSpec("thresholded_relu", X, _f("({a} if {a} > {alpha} else {zero})"), {"alpha": 1.0}),
        EwSpec("not", X, _f("(not {a})"), out="bool"),
        EwSpec("and", AB, _f("({a} and {b})"), out="bool"),
        EwSpec("or", AB, _f("({a} or {b})"), out="bool"),
        EwSpec("xor", AB, _f("({a} != {b})"), out="bool"),
        EwSpec("equal", AB, _f("({a} == {b})"), out="bool"),
        EwSpec("less", AB, _f("({a} < {b})"), out="bool"),
        EwSpec("greater", AB, _f("({a} > {b})"), out="bool"),
        EwSpec("less_or_equal", AB, _f("({a} <= {b})"), out="bool"),
        EwSpec("greater_or_equal", AB, _f("({a} >= {b})"), out="bool"),
        EwSpec("isnan", X, _f("({a} != {a})"), out="bool"),
        EwSpec("where", ("condition", "X", "Y"), _f("({b} if {a} else {c})"), out="input1"),
        EwSpec("cast", ("input",), _cast, {"to": 1, "saturate": 1}, out="cast"),
        EwSpec("identity", ("input",), _f("{a}"), alias=True),
        EwSpec("affine", ("X", "scale", "bias"), _f("{a} * {b} + {c}")),
    )
}
