"""Elementwise op trees -> the body of one CUDA ``cupy.ElementwiseKernel``.

A tree of elementwise ONNX nodes (each intermediate read once, by its parent) becomes a list
of ``float`` temporaries and one store ``out0 = T(...)``. Arithmetic runs in ``float`` for
both float16 and float32 tensors (one rounding at the store); broadcasting of the kernel's
inputs is done by ``ElementwiseKernel`` itself.

The expressions use a deliberately small C++ subset that Python parses too: calls, fully
parenthesised infix arithmetic and comparisons, functional casts ``float(x)``. So the very
same text is evaluated with numpy by :func:`evaluate_numpy`, which is how the semantics of
every template is tested without a GPU, and how host-resident values are computed.

Pure module: no cupy, no onnx.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "OPS",
    "PREAMBLE",
    "EwNode",
    "FusedKernelSpec",
    "OpTemplate",
    "evaluate_numpy",
    "fuse_tree",
    "literal",
]

#: Device helpers the templates may call: ``?:`` as a function, NaN-propagating max/min.
PREAMBLE = """
#define OX_INF __int_as_float(0x7f800000)
#define OX_NAN __int_as_float(0x7fffffff)
__device__ __forceinline__ float ox_where(bool c, float a, float b) { return c ? a : b; }
__device__ __forceinline__ float ox_max(float a, float b) {
  return (a != a || b != b) ? a + b : (a > b ? a : b);
}
__device__ __forceinline__ float ox_min(float a, float b) {
  return (a != a || b != b) ? a + b : (a < b ? a : b);
}
"""


def literal(value: float) -> str:
    """A float constant in the shared C++/Python subset."""
    value = float(value)
    if math.isnan(value):
        return "OX_NAN"
    if math.isinf(value):
        return "OX_INF" if value > 0 else "(-OX_INF)"
    return f"float({value!r})"


Template = Callable[[Sequence["str | None"], Mapping[str, Any]], str]


@dataclasses.dataclass(frozen=True)
class OpTemplate:
    """How one elementwise op is written: its expression and the kinds of its values.

    ``render(args, attrs)`` gets one expression per input (None for a missing optional one)
    and the attributes with defaults filled in. ``kinds`` gives each input's kind
    (``"f"`` float, ``"b"`` bool); ``out`` the result's kind.
    """

    render: Template
    defaults: Mapping[str, Any]
    kinds: tuple[str, ...] = ("f",)
    out: str = "f"
    variadic: bool = False

    def kind_of(self, i: int) -> str:
        """The kind of input ``i``."""
        return self.kinds[-1] if self.variadic and i >= len(self.kinds) else self.kinds[i]


def _lit(x: Any) -> str:
    return literal(x)


def _f32(x: float) -> float:
    """An attribute default as the schema stores it (a float32)."""
    return float(np.float32(x))


def _fold(op: str, args: Sequence[str | None]) -> str:
    present = [a for a in args if a is not None]
    expr = present[0]
    for a in present[1:]:
        expr = f"{op}({expr}, {a})" if op.isidentifier() else f"({expr} {op} {a})"
    return expr


def _clip(a: Sequence[str | None], k: Mapping[str, Any]) -> str:
    lo = a[1] if len(a) > 1 and a[1] is not None else None
    hi = a[2] if len(a) > 2 and a[2] is not None else None
    if "min" in k:  # Clip-6: bounds are attributes
        lo, hi = _lit(k["min"]), _lit(k["max"])
    expr = a[0]
    if lo is not None:
        expr = f"ox_max({expr}, {lo})"
    if hi is not None:
        expr = f"ox_min({expr}, {hi})"
    return str(expr)


def _gelu(a: Sequence[str | None], k: Mapping[str, Any]) -> str:
    x = a[0]
    if k["approximate"] == "tanh":
        inner = (
            f"({_lit(math.sqrt(2 / math.pi))} * ({x} + (({_lit(0.044715)} * {x}) * ({x} * {x}))))"
        )
        return f"(({_lit(0.5)} * {x}) * ({_lit(1.0)} + tanhf({inner})))"
    return f"(({_lit(0.5)} * {x}) * ({_lit(1.0)} + erff(({x} * {_lit(math.sqrt(0.5))}))))"


def _hard_sigmoid(x: str, alpha: float, beta: float) -> str:
    return f"ox_max({_lit(0.0)}, ox_min({_lit(1.0)}, (({_lit(alpha)} * {x}) + {_lit(beta)})))"


def _softplus(x: str) -> str:
    # log(1 + e^x) without overflow: x itself beyond 20 (float's e^20 dwarfs 1).
    return f"ox_where(({x} > {_lit(20.0)}), {x}, log1pf(expf({x})))"


def _mean(a: Sequence[str | None], _: Mapping[str, Any]) -> str:
    return f"({_fold('+', a)} / {_lit(len(a))})"


def _cmp(op: str) -> OpTemplate:
    return OpTemplate(lambda a, _: f"({a[0]} {op} {a[1]})", {}, ("f", "f"), out="b")


NO_ATTRS: Mapping[str, Any] = {}
_ONE = _lit(1.0)
_ZERO = _lit(0.0)

#: Every fusible op: its expression template, attribute defaults and value kinds.
OPS: dict[str, OpTemplate] = {
    "Add": OpTemplate(lambda a, _: f"({a[0]} + {a[1]})", NO_ATTRS, ("f", "f")),
    "Sub": OpTemplate(lambda a, _: f"({a[0]} - {a[1]})", NO_ATTRS, ("f", "f")),
    "Mul": OpTemplate(lambda a, _: f"({a[0]} * {a[1]})", NO_ATTRS, ("f", "f")),
    "Div": OpTemplate(lambda a, _: f"({a[0]} / {a[1]})", NO_ATTRS, ("f", "f")),
    "Pow": OpTemplate(lambda a, _: f"powf({a[0]}, {a[1]})", NO_ATTRS, ("f", "f")),
    "Max": OpTemplate(lambda a, _: _fold("ox_max", a), NO_ATTRS, ("f",), variadic=True),
    "Min": OpTemplate(lambda a, _: _fold("ox_min", a), NO_ATTRS, ("f",), variadic=True),
    "Sum": OpTemplate(lambda a, _: _fold("+", a), NO_ATTRS, ("f",), variadic=True),
    "Mean": OpTemplate(_mean, NO_ATTRS, ("f",), variadic=True),
    "Abs": OpTemplate(lambda a, _: f"fabsf({a[0]})", NO_ATTRS),
    "Neg": OpTemplate(lambda a, _: f"(-{a[0]})", NO_ATTRS),
    "Exp": OpTemplate(lambda a, _: f"expf({a[0]})", NO_ATTRS),
    "Log": OpTemplate(lambda a, _: f"logf({a[0]})", NO_ATTRS),
    "Sqrt": OpTemplate(lambda a, _: f"sqrtf({a[0]})", NO_ATTRS),
    "Reciprocal": OpTemplate(lambda a, _: f"({_ONE} / {a[0]})", NO_ATTRS),
    "Floor": OpTemplate(lambda a, _: f"floorf({a[0]})", NO_ATTRS),
    "Ceil": OpTemplate(lambda a, _: f"ceilf({a[0]})", NO_ATTRS),
    "Round": OpTemplate(lambda a, _: f"rintf({a[0]})", NO_ATTRS),  # half to even
    "Sign": OpTemplate(
        lambda a, _: (
            f"ox_where(({a[0]} > {_ZERO}), {_ONE}, ox_where(({a[0]} < {_ZERO}), "
            f"{_lit(-1.0)}, {a[0]}))"
        ),
        NO_ATTRS,
    ),
    "Sin": OpTemplate(lambda a, _: f"sinf({a[0]})", NO_ATTRS),
    "Cos": OpTemplate(lambda a, _: f"cosf({a[0]})", NO_ATTRS),
    "Tanh": OpTemplate(lambda a, _: f"tanhf({a[0]})", NO_ATTRS),
    "Erf": OpTemplate(lambda a, _: f"erff({a[0]})", NO_ATTRS),
    "Sigmoid": OpTemplate(lambda a, _: f"({_ONE} / ({_ONE} + expf((-{a[0]}))))", NO_ATTRS),
    "Relu": OpTemplate(lambda a, _: f"ox_where(({a[0]} < {_ZERO}), {_ZERO}, {a[0]})", NO_ATTRS),
    "LeakyRelu": OpTemplate(
        lambda a, k: f"ox_where(({a[0]} < {_ZERO}), ({_lit(k['alpha'])} * {a[0]}), {a[0]})",
        {"alpha": _f32(0.01)},
    ),
    "PRelu": OpTemplate(
        lambda a, _: f"ox_where(({a[0]} < {_ZERO}), ({a[1]} * {a[0]}), {a[0]})",
        NO_ATTRS,
        ("f", "f"),
    ),
    "Elu": OpTemplate(
        lambda a, k: f"ox_where(({a[0]} < {_ZERO}), ({_lit(k['alpha'])} * expm1f({a[0]})), {a[0]})",
        {"alpha": 1.0},
    ),
    "Selu": OpTemplate(
        lambda a, k: (
            f"({_lit(k['gamma'])} * ox_where(({a[0]} > {_ZERO}), {a[0]}, "
            f"({_lit(k['alpha'])} * expm1f({a[0]}))))"
        ),
        {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
    ),
    "HardSigmoid": OpTemplate(
        lambda a, k: _hard_sigmoid(str(a[0]), k["alpha"], k["beta"]),
        {"alpha": _f32(0.2), "beta": 0.5},
    ),
    "HardSwish": OpTemplate(
        lambda a, _: f"({a[0]} * {_hard_sigmoid(str(a[0]), 1 / 6, 0.5)})", NO_ATTRS
    ),
    "Softplus": OpTemplate(lambda a, _: _softplus(str(a[0])), NO_ATTRS),
    "Mish": OpTemplate(lambda a, _: f"({a[0]} * tanhf({_softplus(str(a[0]))}))", NO_ATTRS),
    "Gelu": OpTemplate(_gelu, {"approximate": "none"}),
    "Clip": OpTemplate(_clip, NO_ATTRS, ("f", "f", "f")),
    "Where": OpTemplate(
        lambda a, _: f"ox_where({a[0]}, {a[1]}, {a[2]})", NO_ATTRS, ("b", "f", "f")
    ),
    "Less": _cmp("<"),
    "Greater": _cmp(">"),
    "LessOrEqual": _cmp("<="),
    "GreaterOrEqual": _cmp(">="),
    "Equal": _cmp("=="),
}


@dataclasses.dataclass(frozen=True)
class EwNode:
    """One elementwise node, as the generator sees it (no onnx types)."""

    op_type: str
    inputs: tuple[str, ...]  # value names; "" for a missing optional input
    output: str
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FusedKernelSpec:
    """A fused kernel: parameters, ``float``/``bool`` temporaries, and the store.

    ``inputs`` are the external values read, in parameter order, with their ``kinds``
    (``"T"`` the tensor type, ``"bool"``, or an explicit dtype name such as ``"int64"``).
    ``body`` is ``(kind, name, expression)`` per temporary, in order; ``result`` the
    temporary stored into ``out0``.
    """

    inputs: tuple[str, ...]
    kinds: tuple[str, ...]
    body: tuple[tuple[str, str, str], ...]
    result: str
    output: str
    n_nodes: int

    @property
    def in_params(self) -> str:
        """``ElementwiseKernel``'s input parameter list."""
        return ", ".join(f"{k} in{i}" for i, k in enumerate(self.kinds))

    @property
    def out_params(self) -> str:
        """The output parameter list: one tensor of type ``T``."""
        return "T out0"

    @property
    def operation(self) -> str:
        """The loop body: one C statement per temporary, then the store."""
        lines = [f"{'bool' if k == 'b' else 'float'} {n} = {e};" for k, n, e in self.body]
        lines.append(f"out0 = T({self.result});")
        return "\n".join(lines)

    @property
    def name(self) -> str:
        """A kernel name that identifies the code (CuPy caches compiled code by source)."""
        digest = hashlib.sha1(f"{self.in_params}|{self.operation}".encode()).hexdigest()
        return f"onnxep_fused_{digest[:12]}"


class _Writer:
    """Walks a tree from its root, emitting each value once."""

    def __init__(
        self,
        producers: Mapping[str, EwNode],
        constants: Mapping[str, float],
        dtypes: Mapping[str, str],
    ) -> None:
        self.producers = producers
        self.constants = constants
        self.dtypes = dtypes
        self.params: dict[str, str] = {}  # value -> kind
        self.names: dict[str, str] = {}  # value -> expression naming it
        self.body: list[tuple[str, str, str]] = []
        self.n_nodes = 0

    def value(self, name: str, kind: str) -> str:
        if name in self.names:
            return self.names[name]
        if name in self.producers:
            return self.node(self.producers[name])
        if name in self.constants and kind == "f":
            return literal(self.constants[name])
        index = len(self.params)
        param_kind = "bool" if kind == "b" else self.dtypes.get(name, "T")
        self.params[name] = param_kind
        expr = f"in{index}" if kind == "b" else f"float(in{index})"
        return self._temp(name, kind, expr, prefix="v")

    def node(self, node: EwNode) -> str:
        template = OPS[node.op_type]
        args = [
            self.value(x, template.kind_of(i)) if x else None for i, x in enumerate(node.inputs)
        ]
        attrs = {**template.defaults, **node.attrs}
        self.n_nodes += 1
        return self._temp(node.output, template.out, template.render(args, attrs), prefix="t")

    def _temp(self, value: str, kind: str, expr: str, prefix: str) -> str:
        name = f"{prefix}{len(self.body)}"
        self.body.append((kind, name, expr))
        self.names[value] = name
        return name


def fuse_tree(
    root: EwNode,
    producers: Mapping[str, EwNode] | None = None,
    constants: Mapping[str, float] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> FusedKernelSpec:
    """The kernel computing ``root`` with the nodes in ``producers`` inlined.

    ``producers`` maps each inlined value to the node producing it (the tree below the root);
    any other input becomes a kernel parameter, except scalar ``constants``, which are written
    as literals. ``dtypes`` names the dtype of parameters that are not of type ``T``
    (an integer exponent, say). The result's kind must be float.
    """
    if OPS[root.op_type].out != "f":
        raise ValueError(f"the root of a fused kernel must produce floats, not {root.op_type}")
    writer = _Writer(producers or {}, constants or {}, dtypes or {})
    result = writer.node(root)
    if "T" not in writer.params.values():  # the loop size comes from a T-typed array
        if constants:
            return fuse_tree(root, producers, None, dtypes)
        raise ValueError(f"{root.op_type} has no tensor input of the output type")
    return FusedKernelSpec(
        tuple(writer.params),
        tuple(writer.params.values()),
        tuple(writer.body),
        result,
        root.output,
        writer.n_nodes,
    )


# --- the same text, evaluated with numpy ---------------------------------------------------
def _as_f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _erf(x: Any) -> np.ndarray:
    flat = np.asarray(x, dtype=np.float64)
    return np.vectorize(math.erf, otypes=[np.float64])(flat).astype(np.float32)


_NUMPY_NAMES: dict[str, Any] = {
    "float": _as_f32,
    "ox_where": np.where,
    "ox_max": np.maximum,
    "ox_min": np.minimum,
    "fabsf": np.abs,
    "expf": np.exp,
    "expm1f": np.expm1,
    "logf": np.log,
    "log1pf": np.log1p,
    "sqrtf": np.sqrt,
    "floorf": np.floor,
    "ceilf": np.ceil,
    "rintf": np.rint,
    "sinf": np.sin,
    "cosf": np.cos,
    "tanhf": np.tanh,
    "erff": _erf,
    "powf": np.power,
    "OX_INF": np.float32(np.inf),
    "OX_NAN": np.float32(np.nan),
}


def _compiled(expr: str) -> Any:
    tree = ast.parse(expr, mode="eval")
    for sub in ast.walk(tree):  # the subset: names, constants, calls, operators
        if isinstance(sub, (ast.Attribute, ast.Subscript, ast.Lambda, ast.BoolOp, ast.IfExp)):
            raise ValueError(f"expression outside the C/Python subset: {expr}")
    return compile(tree, "<onnxep-fused>", "eval")


def evaluate_numpy(spec: FusedKernelSpec, *arrays: Any, dtype: Any = None) -> np.ndarray:
    """Run the kernel's own expressions with numpy (host values, and GPU-free tests)."""
    scope: dict[str, Any] = {"__builtins__": {}, **_NUMPY_NAMES}
    out_dtype = dtype
    with np.errstate(all="ignore"):
        for i, (kind, array) in enumerate(zip(spec.kinds, arrays, strict=True)):
            scope[f"in{i}"] = np.asarray(array)
            if kind == "T" and out_dtype is None:
                out_dtype = np.asarray(array).dtype
        for kind, name, expr in spec.body:
            value = eval(_compiled(expr), scope)
            scope[name] = np.asarray(value, dtype=bool if kind == "b" else np.float32)
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        result = np.broadcast_to(scope[spec.result], shape)
        return np.array(result, dtype=out_dtype)
