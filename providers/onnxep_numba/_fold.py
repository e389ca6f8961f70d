"""Segment rewrites before elementwise fusion.

* Conv whose weight (and bias) are constants absorbs a chain of single-consumer
  BatchNormalization (constant statistics), Mul/Add/Sub by constant per-channel vectors,
  then one activation (Relu, LeakyRelu, Clip with constant bounds, Sigmoid) into its
  epilogue: ``conv -> bn -> mul -> add -> relu`` becomes one Conv with folded weights.
* Every other BatchNormalization with constant statistics becomes an elementwise affine op
  ``x * s + t``, which then fuses with its elementwise neighbours.
* A Transpose read only by MatMul/Gemm becomes a strided view (attention's head splits):
  the GEMM reads the strides, nothing is copied.

Ops are recognised by their kernel function (``op.kernel.fn``) or elementwise spec, never
by op-type strings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxep_numba._ewops import SPECS
from onnxep_numba._registry import f32, frozen
from onnxep_numba.conv import ACT_CLIP, ACT_LEAKY, ACT_NONE, ACT_RELU, ACT_SIGMOID, conv, conv_act
from onnxep_numba.matmul import gemm, matmul
from onnxep_numba.norm import BN_KERNELS, affine_params
from onnxep_numba.tensor import transpose, transpose_view

__all__ = ["rewrite"]

Fresh = Callable[[str], str]


def rewrite(ops: list[Any], consts: dict[str, Any], outputs: set[str], fresh: Fresh) -> list[Any]:
    """Apply the Conv folds, then turn the remaining BatchNormalizations into affine ops."""
    ops = list(ops)
    _transpose_views(ops, outputs)
    for op in list(ops):
        if (
            op in ops
            and _is(op, conv)
            and _const(op, 1, consts)
            and _const_or_missing(op, 2, consts)
        ):
            _fold_conv(op, ops, consts, outputs, fresh)
    for i, op in enumerate(ops):
        if _is(op, BN_KERNELS) and all(_const(op, k, consts) for k in (1, 2, 3, 4)):
            rank = op.info.input_type(0).rank if op.info is not None else None
            if rank is not None and rank >= 2:
                ops[i] = _affine(op, rank, consts, fresh)
    return ops


def _transpose_views(ops: list[Any], outputs: set[str]) -> None:
    """A Transpose read only by MatMul/Gemm becomes a view: BLAS takes the strides as they are."""
    for op in ops:
        if not _is(op, transpose) or op.outputs[0] in outputs:
            continue
        readers = [r for r in ops if op.outputs[0] in r.inputs]
        if readers and all(_is(r, (matmul, gemm)) for r in readers):
            op.fn = functools.partial(transpose_view, perm=tuple(op.attrs.get("perm", ())))
            op.label = f"{op.label}(view)"


def _is(op: Any, fn: Callable[..., Any] | tuple[Callable[..., Any], ...]) -> bool:
    fns = fn if isinstance(fn, tuple) else (fn,)
    return op.kernel is not None and any(op.kernel.fn is f for f in fns)


def _const(op: Any, i: int, consts: dict[str, Any]) -> bool:
    return i < len(op.inputs) and bool(op.inputs[i]) and op.inputs[i] in consts


def _const_or_missing(op: Any, i: int, consts: dict[str, Any]) -> bool:
    return i >= len(op.inputs) or not op.inputs[i] or op.inputs[i] in consts


def _next(value: str, ops: list[Any], outputs: set[str]) -> Any:
    """The only op reading ``value``, or None (several readers, or a segment output)."""
    if value in outputs:
        return None
    readers = [op for op in ops if value in op.inputs]
    return readers[0] if len(readers) == 1 and readers[0].inputs.count(value) == 1 else None


def _channel_vector(value: Any, rank: int, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the channel dim only, as a length-``channels`` vector."""
    c = np.asarray(value)
    if c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if shape[0] != 1 or any(d != 1 for d in shape[2:]) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1).astype(np.float64), (channels,))


def _absorb(nxt: Any, out: str, w: np.ndarray, b: np.ndarray, consts: dict[str, Any]) -> bool:
    """Fold one affine op after the conv into (w, b) in place; False if it is not one."""
    m = w.shape[0]
    if (
        _is(nxt, BN_KERNELS)
        and nxt.inputs[0] == out
        and all(_const(nxt, k, consts) for k in (1, 2, 3, 4))
    ):
        params = [consts[nxt.inputs[k]] for k in (1, 2, 3, 4)]
        s, t = affine_params(*params, nxt.attrs.get("epsilon", f32(1e-5)))
        w *= s.reshape((-1,) + (1,) * (w.ndim - 1))
        b *= s
        b += t
        return True
    if nxt.spec not in (SPECS["mul"], SPECS["add"], SPECS["sub"]) or len(nxt.inputs) != 2:
        return False
    other = nxt.inputs[1] if nxt.inputs[0] == out else nxt.inputs[0]
    if other not in consts or (nxt.spec is SPECS["sub"] and nxt.inputs[0] != out):
        return False
    v = _channel_vector(consts[other], w.ndim, m)
    if v is None:
        return False
    if nxt.spec is SPECS["mul"]:
        w *= v.reshape((-1,) + (1,) * (w.ndim - 1))
        b *= v
    else:
        b += v if nxt.spec is SPECS["add"] else -v
    return True


def _activation(nxt: Any, consts: dict[str, Any]) -> tuple[int, float, float] | None:
    if nxt.spec is SPECS["relu"]:
        return ACT_RELU, 0.0, 0.0
    if nxt.spec is SPECS["leaky_relu"]:
        return ACT_LEAKY, float(nxt.attrs["alpha"]), 0.0
    if nxt.spec is SPECS["sigmoid"]:
        return ACT_SIGMOID, 0.0, 0.0
    if nxt.spec is SPECS["clip6"]:
        return ACT_CLIP, float(nxt.attrs["min"]), float(nxt.attrs["max"])
    if nxt.spec is SPECS["clip"]:
        bounds = []
        for k, default in ((1, -np.inf), (2, np.inf)):
            name = nxt.inputs[k] if k < len(nxt.inputs) else ""
            if name and name not in consts:
                return None
            bounds.append(float(np.asarray(consts[name]).reshape(-1)[0]) if name else default)
        return ACT_CLIP, bounds[0], bounds[1]
    return None


def _fold_conv(
    op: Any, ops: list[Any], consts: dict[str, Any], outputs: set[str], fresh: Fresh
) -> None:
    w0 = np.asarray(consts[op.inputs[1]])
    w = w0.astype(np.float64)
    has_b = _const(op, 2, consts)
    b = np.asarray(consts[op.inputs[2]], np.float64).copy() if has_b else np.zeros(w.shape[0])
    out, folded, act = op.outputs[0], False, (ACT_NONE, 0.0, 0.0)
    while (nxt := _next(out, ops, outputs)) is not None and _absorb(nxt, out, w, b, consts):
        ops.remove(nxt)
        out, folded = nxt.outputs[0], True
    nxt = _next(out, ops, outputs)
    if nxt is not None and nxt.spec is not None and (found := _activation(nxt, consts)):
        ops.remove(nxt)
        out, act = nxt.outputs[0], found
    if not folded and act[0] == ACT_NONE:
        return
    inputs = list(op.inputs[:2])
    if folded:
        inputs[1] = fresh("W")
        consts[inputs[1]] = frozen(w.astype(w0.dtype))
    if folded or has_b:
        inputs.append(fresh("B") if folded else op.inputs[2])
        consts.setdefault(inputs[2], frozen(b.astype(w0.dtype)))
    op.fn = functools.partial(conv_act, act=act[0], alpha=act[1], beta=act[2], **op.attrs)
    op.inputs, op.outputs = inputs, [out]
    op.label = f"{op.label}+folded"


def _affine(op: Any, rank: int, consts: dict[str, Any], fresh: Fresh) -> Any:
    params = [consts[op.inputs[k]] for k in (1, 2, 3, 4)]
    s, t = affine_params(*params, op.attrs.get("epsilon", f32(1e-5)))
    dtype = np.dtype(op.info.input_type(0).dtype)
    shape = (-1,) + (1,) * (rank - 2)
    names = [fresh("scale"), fresh("shift")]
    consts[names[0]] = frozen(s.astype(dtype).reshape(shape))
    consts[names[1]] = frozen(t.astype(dtype).reshape(shape))
    return type(op)(
        f"{op.label}(affine)",
        [op.inputs[0], *names],
        [op.outputs[0]],
        spec=SPECS["affine"],
        dtype=dtype.name,
        node=op.node,
        info=op.info,
    )
