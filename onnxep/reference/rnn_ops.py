"""Recurrent kernels: LSTM, GRU and RNN (schema versions 7, 14 and 22), full ONNX semantics.

onnx's reference ops ignore ``sequence_lens``, ``activations``, ``clip`` and ``input_forget``;
these kernels implement them, following onnxruntime's CPU kernels where the spec is silent:

- directions forward, reverse and bidirectional; ``layout`` 0 (time-major) and 1
  (batch-major); optional ``B``, ``initial_h``, ``initial_c`` and peepholes ``P``;
- every ONNX activation by name, case-insensitively (Relu, Tanh, Sigmoid, Affine,
  LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus);
  ``activation_alpha``/``activation_beta`` are consumed in order, only by the functions
  that take them (onnxruntime's table of counts and defaults);
- ``clip`` bounds every gate's input (after bias and peephole) before its activation;
- ``sequence_lens``: Y is zero past each sequence's length, Y_h/Y_c hold the state after
  its last step, the reverse direction runs each sequence from its own last step back to
  0; a length of 0 gives zeros in Y, Y_h and Y_c (not the initial state), as onnxruntime.

The input projection of every step and direction is one matmul (X @ W^T, biases folded in);
each step then costs one H @ R^T (two for GRU without ``linear_before_reset``) and in-place
elementwise work on preallocated buffers. float16 runs in float32 and is rounded at the end;
bfloat16 (version 22) is declined and left to onnx.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import FLOATS, factory, fresh, input_dtypes
from onnxep.reference._registry import kernels

__all__ = ["make_gru", "make_lstm", "make_rnn"]

#: An activation ``act(x, out)``: writes f(x) into ``out``, which may be ``x`` itself.
Act = Callable[[np.ndarray, np.ndarray], None]
#: One recurrence step ``step(x_t, h, c, h_new, c_new)`` (c and c_new are None but in LSTM).
Step = Callable[..., None]


# --- activations -----------------------------------------------------------------------------
def _sigmoid(x: np.ndarray, out: np.ndarray) -> None:
    """1 / (1 + exp(-x)) as (1 + tanh(x / 2)) / 2: no overflow."""
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5


def _tanh(x: np.ndarray, out: np.ndarray) -> None:
    np.tanh(x, out=out)


def _relu(x: np.ndarray, out: np.ndarray) -> None:
    np.maximum(x, 0, out=out)


def _softsign(x: np.ndarray, out: np.ndarray) -> None:
    """x / (1 + |x|)."""
    denominator = np.abs(x)
    denominator += 1
    np.divide(x, denominator, out=out)


def _softplus(x: np.ndarray, out: np.ndarray) -> None:
    """log(1 + exp(x)), without overflow for large x."""
    np.logaddexp(0, x, out=out)


def _affine(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        np.multiply(x, alpha, out=out)
        out += beta

    return act


def _scaled_tanh(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        np.multiply(x, beta, out=out)
        np.tanh(out, out=out)
        out *= alpha

    return act


def _hard_sigmoid(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        np.multiply(x, alpha, out=out)
        out += beta
        np.clip(out, 0, 1, out=out)

    return act


def _leaky_relu(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        negative = x < 0
        np.copyto(out, x)
        np.multiply(out, alpha, out=out, where=negative)

    return act


def _thresholded_relu(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        below = x <= alpha  # onnxruntime keeps x only where x > alpha
        np.copyto(out, x)
        np.copyto(out, 0, where=below)

    return act


def _elu(alpha: float, beta: float) -> Act:
    def act(x: np.ndarray, out: np.ndarray) -> None:
        negative = x < 0
        curve = np.expm1(np.minimum(x, 0))
        curve *= alpha
        np.copyto(out, x)
        np.copyto(out, curve, where=negative)

    return act


def _fixed(fn: Act) -> Callable[[float, float], Act]:
    return lambda alpha, beta: fn


#: lower-case name -> (builder(alpha, beta), how many of alpha/beta it takes, default alpha,
#: default beta): onnxruntime's table (``rnn_helpers.cc``).
_ACTIVATIONS: dict[str, tuple[Callable[[float, float], Act], int, float, float]] = {
    "sigmoid": (_fixed(_sigmoid), 0, 0.0, 0.0),
    "tanh": (_fixed(_tanh), 0, 0.0, 0.0),
    "relu": (_fixed(_relu), 0, 0.0, 0.0),
    "softsign": (_fixed(_softsign), 0, 0.0, 0.0),
    "softplus": (_fixed(_softplus), 0, 0.0, 0.0),
    "affine": (_affine, 2, 1.0, 0.0),
    "leakyrelu": (_leaky_relu, 1, 0.01, 0.0),
    "thresholdedrelu": (_thresholded_relu, 1, 1.0, 0.0),
    "scaledtanh": (_scaled_tanh, 2, 1.0, 1.0),
    "hardsigmoid": (_hard_sigmoid, 2, 0.2, 0.5),
    "elu": (_elu, 1, 1.0, 0.0),
}


def _activation(name: str, alphas: Iterator[float], betas: Iterator[float]) -> Act:
    """The activation called ``name``, taking its alpha/beta from the iterators if it uses
    them (and they are not exhausted), else the function's defaults."""
    entry = _ACTIVATIONS.get(name.lower())
    if entry is None:
        raise ValueError(f"unknown recurrent activation {name!r}")
    build, count, alpha, beta = entry
    if count >= 1:
        alpha = next(alphas, alpha)
    if count == 2:
        beta = next(betas, beta)
    return build(float(alpha), float(beta))


def _activations(
    attrs: Mapping[str, Any], defaults: Sequence[str], n_directions: int
) -> tuple[tuple[Act, ...], ...]:
    """The activations of each direction (``len(defaults)`` per direction).

    Extra names are ignored (RNN's schema default lists two for any direction); too few
    is an error, as in onnxruntime.
    """
    names = attrs.get("activations") or tuple(defaults) * n_directions
    per = len(defaults)
    if len(names) < per * n_directions:
        raise ValueError(
            f"{len(names)} activations for {n_directions} direction(s); need {per} per direction"
        )
    alphas = iter(attrs.get("activation_alpha") or ())
    betas = iter(attrs.get("activation_beta") or ())
    acts = [_activation(name, alphas, betas) for name in names[: per * n_directions]]
    return tuple(tuple(acts[d * per : (d + 1) * per]) for d in range(n_directions))


# --- attributes and steps ----------------------------------------------------------------------
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}


@dataclasses.dataclass(frozen=True)
class _Config:
    """The attributes every recurrent op shares, parsed once."""

    reverse: tuple[bool, ...]  # per direction
    acts: tuple[tuple[Act, ...], ...]  # per direction
    clip: float | None
    layout: int
    wanted: tuple[bool, ...]  # which outputs are requested

    @classmethod
    def parse(
        cls, attrs: Mapping[str, Any], defaults: Sequence[str], wanted: Sequence[bool]
    ) -> _Config:
        """Read direction, activations, clip and layout from ``attrs``."""
        direction = attrs.get("direction", "forward")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not forward, reverse or bidirectional")
        reverse = _DIRECTIONS[direction]
        clip = attrs.get("clip")
        layout = int(attrs.get("layout", 0))
        if layout not in (0, 1):
            raise ValueError(f"layout {layout} is not 0 or 1")
        acts = _activations(attrs, defaults, len(reverse))
        return cls(reverse, acts, None if clip is None else float(clip), layout, tuple(wanted))


@dataclasses.dataclass(frozen=True)
class _Steps:
    """The steps of one direction: for each, the time index and the rows still running."""

    times: Sequence[int]
    masks: Sequence[np.ndarray | None]  # (batch, 1) bool, None when every row runs
    gather: np.ndarray | None = None  # reverse, varied lengths: (steps, batch) row times
    valid: np.ndarray | None = None  # with gather: (steps, batch) whether the row runs


def _lengths(sequence_lens: Any, seq: int, batch: int) -> np.ndarray | None:
    """The per-row lengths as int64, or None when every row runs the whole sequence."""
    if sequence_lens is None:
        return None
    lens = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
    if lens.shape != (batch,):
        raise ValueError(f"sequence_lens has shape {lens.shape}; expected ({batch},)")
    if ((lens < 0) | (lens > seq)).any():
        raise ValueError(f"sequence_lens values must be in [0, {seq}]: {lens.tolist()}")
    return None if (lens == seq).all() else lens


def _steps(seq: int, lens: np.ndarray | None, reverse: bool) -> _Steps:
    """The step plan of one direction over ``seq`` steps with per-row ``lens``."""
    if lens is None or (lens == lens[0]).all():
        n = seq if lens is None else int(lens[0])
        times = range(n - 1, -1, -1) if reverse else range(n)
        return _Steps(times, [None] * n)
    longest, shortest = int(lens.max()), int(lens.min())
    masks = [None if s < shortest else (s < lens)[:, None] for s in range(longest)]
    if not reverse:
        return _Steps(range(longest), masks)
    times = lens[None, :] - 1 - np.arange(longest)[:, None]
    return _Steps(range(longest), masks, np.maximum(times, 0), times >= 0)


def _recur(
    step: Step,
    xw: np.ndarray,
    steps: _Steps,
    h: np.ndarray,
    c: np.ndarray | None,
    y: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``step`` over ``steps``; rows past their length keep their state. Writes each
    step's hidden state to ``y[t]`` (which must be zero where rows stop) and returns the
    final (h, c)."""
    h_new = np.empty_like(h)
    c_new = None if c is None else np.empty_like(c)
    for t, mask in zip(steps.times, steps.masks):
        step(xw[t], h, c, h_new, c_new)
        if mask is None:
            h, h_new = h_new, h
            if c is not None:
                c, c_new = c_new, c
            if y is not None:
                y[t] = h
        else:
            np.copyto(h, h_new, where=mask)
            if c is not None:
                np.copyto(c, c_new, where=mask)
            if y is not None:
                np.copyto(y[t], h_new, where=mask)
    return h, c


# --- per-op steps -----------------------------------------------------------------------------
def _clipper(clip: float | None) -> Callable[[np.ndarray], None]:
    """In-place clip of gate inputs to [-clip, clip] (nothing without ``clip``)."""
    if clip is None:
        return lambda x: None
    return lambda x: np.clip(x, -clip, clip, out=x)


def _lstm_step(
    RT: np.ndarray,
    P: np.ndarray | None,
    acts: tuple[Act, ...],
    clip: float | None,
    input_forget: bool,
    batch: int,
) -> Step:
    """One LSTM step (gates i, o, f, c; peepholes i, o, f) with its work buffers."""
    f, g, h_act = acts
    hidden = RT.shape[0]
    gates = np.empty((batch, 4 * hidden), RT.dtype)
    tmp = np.empty((batch, hidden), RT.dtype)
    i, o, forget, cell = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
    iof = gates[:, : 3 * hidden]
    clipped = _clipper(clip)
    p_i, p_o, p_f = (None, None, None) if P is None else (P[:hidden], P[hidden : 2 * hidden],
                                                            P[2 * hidden :])  # fmt: skip

    def peep(gate: np.ndarray, weight: np.ndarray, c: np.ndarray) -> None:
        np.multiply(c, weight, out=tmp)
        gate += tmp

    def step(x: np.ndarray, h: np.ndarray, c: np.ndarray, h_new: np.ndarray, c_new: np.ndarray):
        np.matmul(h, RT, out=gates)
        np.add(gates, x, out=gates)
        if P is None:
            clipped(gates)
            f(iof, iof)
        else:
            peep(i, p_i, c)
            clipped(i)
            f(i, i)
            if not input_forget:
                peep(forget, p_f, c)
                clipped(forget)
                f(forget, forget)
            clipped(cell)
        if input_forget:
            np.subtract(1, i, out=forget)
        g(cell, cell)
        np.multiply(forget, c, out=c_new)
        np.multiply(i, cell, out=tmp)
        c_new += tmp
        if P is not None:
            peep(o, p_o, c_new)
            clipped(o)
            f(o, o)
        h_act(c_new, tmp)
        np.multiply(o, tmp, out=h_new)

    return step


def _gru_step(
    R: np.ndarray,
    rb_h: np.ndarray | None,
    acts: tuple[Act, ...],
    clip: float | None,
    batch: int,
) -> Step:
    """One GRU step (gates z, r, h). ``rb_h`` is the recurrence bias of the h gate when it
    stays inside the reset product (``linear_before_reset``), else None (folded into x)."""
    f, g = acts
    hidden = R.shape[1]
    clipped = _clipper(clip)
    zrh = np.empty((batch, 3 * hidden), R.dtype)
    z, r, hh = (zrh[:, k * hidden : (k + 1) * hidden] for k in range(3))
    zr = zrh[:, : 2 * hidden]
    tmp = np.empty((batch, hidden), R.dtype)
    RT, RT_zr, RT_h = R.T, R[: 2 * hidden].T, R[2 * hidden :].T

    def update(x: np.ndarray) -> None:
        np.add(zr, x[:, : 2 * hidden], out=zr)
        clipped(zr)
        f(zr, zr)

    def step(x: np.ndarray, h: np.ndarray, c: None, h_new: np.ndarray, c_new: None) -> None:
        if rb_h is None:  # h~ = g(x Wh + (r * h) Rh + biases)
            np.matmul(h, RT_zr, out=zr)
            update(x)
            np.multiply(r, h, out=tmp)
            np.matmul(tmp, RT_h, out=hh)
        else:  # h~ = g(x Wh + Wbh + r * (h Rh + Rbh))
            np.matmul(h, RT, out=zrh)
            update(x)
            np.add(hh, rb_h, out=hh)
            np.multiply(hh, r, out=hh)
        np.add(hh, x[:, 2 * hidden :], out=hh)
        clipped(hh)
        g(hh, hh)
        np.subtract(h, hh, out=h_new)  # h_new = (1 - z) * h~ + z * h
        h_new *= z
        h_new += hh

    return step


def _rnn_step(R: np.ndarray, acts: tuple[Act, ...], clip: float | None) -> Step:
    """One RNN step: h = f(x Wi + h Ri + biases)."""
    (f,) = acts
    RT = R.T
    clipped = _clipper(clip)

    def step(x: np.ndarray, h: np.ndarray, c: None, h_new: np.ndarray, c_new: None) -> None:
        np.matmul(h, RT, out=h_new)
        h_new += x
        clipped(h_new)
        f(h_new, h_new)

    return step


# --- the shared driver ------------------------------------------------------------------------
def _compute_dtype(x: np.ndarray) -> np.dtype:
    """float16 computes in float32; float32 and float64 in themselves."""
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def _project(X: np.ndarray, W: np.ndarray, bias: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """X @ W^T (+ bias) for every step and direction in one matmul, in X's own memory order:
    [seq or batch, batch or seq, directions * gates * hidden]."""
    x2 = X.reshape(-1, X.shape[-1]).astype(dtype, copy=False)
    w2 = W.reshape(-1, W.shape[-1]).astype(dtype, copy=False)
    xw = np.matmul(x2, w2.T)
    if bias is not None:
        xw += bias.reshape(-1)
    return xw.reshape(*X.shape[:2], -1)


def _states(value: Any, layout: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An initial state as a [directions, batch, hidden] work copy (zeros when absent)."""
    if value is None:
        return np.zeros(shape, dtype)
    value = np.asarray(value)
    return np.array(value if layout == 0 else value.swapaxes(0, 1), dtype=dtype)


def _allocate(
    config: _Config, seq: int, batch: int, hidden: int, n_states: int, dtype: np.dtype,
    zero_y: bool,
) -> tuple[np.ndarray | None, list[np.ndarray | None]]:  # fmt: skip
    """The requested outputs: Y and the final states, in the layout's shapes."""
    dirs = len(config.reverse)
    y = None
    if config.wanted[0]:
        shape = (seq, dirs, batch, hidden) if config.layout == 0 else (batch, seq, dirs, hidden)
        y = fresh(shape, dtype)
        if zero_y:
            y.fill(0)
    state_shape = (dirs, batch, hidden) if config.layout == 0 else (batch, dirs, hidden)
    states = [
        fresh(state_shape, dtype) if i + 1 < len(config.wanted) and config.wanted[i + 1] else None
        for i in range(n_states)
    ]
    return y, states


def _time_major_y(y: np.ndarray, layout: int) -> np.ndarray:
    """Y as a [seq, directions, batch, hidden] view."""
    return y if layout == 0 else y.transpose(1, 2, 0, 3)


def _run(
    config: _Config,
    X: Any,
    W: Any,
    bias: np.ndarray | None,
    sequence_lens: Any,
    initial: Sequence[Any],
    make_step: Callable[[int, int], Step],
    gates: int,
) -> tuple[Any, ...]:
    """The driver of every recurrent op.

    ``bias`` is what is added to the input projection ([directions, gates * hidden]);
    ``initial`` the initial states (h, and c for LSTM; None when absent); ``make_step(d,
    batch)`` builds direction ``d``'s step. Returns the outputs (None where not requested).
    """
    X, W = np.asarray(X), np.asarray(W)
    dtype = _compute_dtype(X)
    if X.ndim != 3:
        raise ValueError(f"X must be 3-D, got shape {X.shape}")
    seq, batch = X.shape[:2] if config.layout == 0 else X.shape[1::-1]
    dirs, hidden = len(config.reverse), W.shape[1] // gates
    if W.shape[0] != dirs:
        raise ValueError(f"W has {W.shape[0]} directions; the direction attribute says {dirs}")
    lens = _lengths(sequence_lens, seq, batch)
    states = [_states(v, config.layout, (dirs, batch, hidden), dtype) for v in initial]
    y, finals = _allocate(config, seq, batch, hidden, len(initial), dtype, lens is not None)
    y_t = None if y is None else _time_major_y(y, config.layout)
    xw = _project(X, W, bias, dtype)
    if config.layout == 1:
        xw = xw.swapaxes(0, 1)
    width = gates * hidden
    for d, reverse in enumerate(config.reverse):
        results = _direction(
            make_step(d, batch),
            xw[:, :, d * width : (d + 1) * width],
            _steps(seq, lens, reverse),
            [state[d] for state in states],
            None if y_t is None else y_t[:, d],
        )
        for final, state in zip(finals, results):
            if final is not None:
                _time_major_state(final, config.layout)[d] = state
    if lens is not None:
        _zero_empty_rows(finals, lens, config.layout)
    outputs = (y, *finals)
    if X.dtype != dtype:
        outputs = tuple(None if o is None else o.astype(X.dtype) for o in outputs)
    return outputs


def _direction(
    step: Step, xw: np.ndarray, steps: _Steps, states: list[np.ndarray], y: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """Run one direction; returns its final states. A reverse direction with varied lengths
    runs on its inputs gathered in each row's own order, and scatters its Y back."""
    h, c = states[0], states[1] if len(states) > 1 else None
    if steps.gather is None:
        h, c = _recur(step, xw, steps, h, c, y)
        return (h,) if c is None else (h, c)
    rows = np.arange(xw.shape[1])
    work = None if y is None else np.zeros((len(steps.times), *y.shape[1:]), y.dtype)
    h, c = _recur(step, xw[steps.gather, rows], steps, h, c, work)
    if y is not None:
        run_step, row = np.nonzero(steps.valid)
        y[steps.gather[run_step, row], row] = work[run_step, row]
    return (h,) if c is None else (h, c)


def _time_major_state(state: np.ndarray, layout: int) -> np.ndarray:
    """A final state as a [directions, batch, hidden] view."""
    return state if layout == 0 else state.swapaxes(0, 1)


def _zero_empty_rows(finals: Sequence[np.ndarray | None], lens: np.ndarray, layout: int) -> None:
    """Rows of length 0 end with zero states (onnxruntime's behaviour)."""
    empty = lens == 0
    if not empty.any():
        return
    for final in finals:
        if final is not None:
            _time_major_state(final, layout)[:, empty] = 0


def _optional(value: Any, dtype: np.dtype) -> np.ndarray | None:
    """An optional input as an array of ``dtype`` (None when missing or empty)."""
    if value is None:
        return None
    value = np.asarray(value)
    return None if value.size == 0 else value.astype(dtype, copy=False)


def _split_bias(B: Any, width: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """(Wb, Rb), each [directions, width], or None without B."""
    b = _optional(B, dtype)
    return None if b is None else (b[:, :width], b[:, width:])


# --- public runners ---------------------------------------------------------------------------
def make_lstm(attrs: Mapping[str, Any], wanted: Sequence[bool] = (True, True, True)) -> Callable:
    """An LSTM with its attributes parsed once: ``run(X, W, R, B=None, sequence_lens=None,
    initial_h=None, initial_c=None, P=None)`` returns (Y, Y_h, Y_c), None where ``wanted``
    says the output is not requested."""
    config = _Config.parse(attrs, ("Sigmoid", "Tanh", "Tanh"), wanted)
    input_forget = bool(attrs.get("input_forget", 0))

    def run(
        X: Any,
        W: Any,
        R: Any,
        B: Any = None,
        sequence_lens: Any = None,
        initial_h: Any = None,
        initial_c: Any = None,
        P: Any = None,
    ) -> tuple[Any, ...]:
        dtype = _compute_dtype(np.asarray(X))
        r = np.asarray(R).astype(dtype, copy=False)
        hidden = r.shape[-1]
        bias = _split_bias(B, 4 * hidden, dtype)
        p = _optional(P, dtype)

        def make_step(d: int, batch: int) -> Step:
            act = config.acts[d]
            peep = None if p is None else p[d]
            return _lstm_step(r[d].T, peep, act, config.clip, input_forget, batch)

        folded = None if bias is None else bias[0] + bias[1]
        return _run(config, X, W, folded, sequence_lens, (initial_h, initial_c), make_step, 4)

    return run


def make_gru(attrs: Mapping[str, Any], wanted: Sequence[bool] = (True, True)) -> Callable:
    """A GRU with its attributes parsed once: ``run(X, W, R, B=None, sequence_lens=None,
    initial_h=None)`` returns (Y, Y_h), None where ``wanted`` says it is not requested."""
    config = _Config.parse(attrs, ("Sigmoid", "Tanh"), wanted)
    linear_before_reset = bool(attrs.get("linear_before_reset", 0))

    def run(X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None,
            initial_h: Any = None) -> tuple[Any, ...]:  # fmt: skip
        dtype = _compute_dtype(np.asarray(X))
        r = np.asarray(R).astype(dtype, copy=False)
        hidden = r.shape[-1]
        bias = _split_bias(B, 3 * hidden, dtype)
        folded, rb_h = None, None
        if bias is not None:
            wb, rb = bias
            folded = wb.copy()
            if linear_before_reset:  # Rbh stays inside the reset product
                folded[:, : 2 * hidden] += rb[:, : 2 * hidden]
                rb_h = rb[:, 2 * hidden :]
            else:
                folded += rb

        def make_step(d: int, batch: int) -> Step:
            inner = None
            if linear_before_reset:
                inner = np.zeros(hidden, dtype) if rb_h is None else rb_h[d]
            return _gru_step(r[d], inner, config.acts[d], config.clip, batch)

        return _run(config, X, W, folded, sequence_lens, (initial_h,), make_step, 3)

    return run


def make_rnn(attrs: Mapping[str, Any], wanted: Sequence[bool] = (True, True)) -> Callable:
    """A simple RNN with its attributes parsed once: ``run(X, W, R, B=None,
    sequence_lens=None, initial_h=None)`` returns (Y, Y_h), None where not ``wanted``."""
    config = _Config.parse(attrs, ("Tanh",), wanted)

    def run(X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None,
            initial_h: Any = None) -> tuple[Any, ...]:  # fmt: skip
        dtype = _compute_dtype(np.asarray(X))
        r = np.asarray(R).astype(dtype, copy=False)
        bias = _split_bias(B, r.shape[-1], dtype)
        folded = None if bias is None else bias[0] + bias[1]

        def make_step(d: int, batch: int) -> Step:
            return _rnn_step(r[d], config.acts[d], config.clip)

        return _run(config, X, W, folded, sequence_lens, (initial_h,), make_step, 1)

    return run


# --- registration -----------------------------------------------------------------------------
#: Every float input (all but sequence_lens, input 4) must be float16/32/64: bfloat16 and
#: other types are left to onnx.
_check = input_dtypes(i0=FLOATS, i1=FLOATS, i2=FLOATS, i3=FLOATS, i5=FLOATS, i6=FLOATS,
                      i7=FLOATS)  # fmt: skip


def _wanted(info: NodeInfo, n: int) -> tuple[bool, ...]:
    """Which of the op's ``n`` outputs the node asks for (non-empty names)."""
    outputs = info.node.outputs
    return tuple(i < len(outputs) and bool(outputs[i]) for i in range(n))


def _quiet(run: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
    """``run`` with numpy's floating-point warnings off (overflowing gates are IEEE)."""

    def quiet(*inputs: Any) -> tuple[Any, ...]:
        with np.errstate(all="ignore"):
            return run(*inputs)

    return quiet


@kernels.register("LSTM", versions=(7, 14, 22), factory=True, fresh_output=True, check=_check)
@factory(direction="forward", input_forget=0, layout=0)
def lstm(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """LSTM with every attribute and optional input (see the module docstring)."""
    return _quiet(make_lstm(attrs, _wanted(info, 3)))


@kernels.register("GRU", versions=(7, 14, 22), factory=True, fresh_output=True, check=_check)
@factory(direction="forward", layout=0, linear_before_reset=0)
def gru(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """GRU with every attribute and optional input (see the module docstring)."""
    return _quiet(make_gru(attrs, _wanted(info, 2)))


@kernels.register("RNN", versions=(7, 14, 22), factory=True, fresh_output=True, check=_check)
@factory(direction="forward", layout=0, activations=("Tanh", "Tanh"))
def rnn(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    """Simple RNN with every attribute and optional input (see the module docstring)."""
    return _quiet(make_rnn(attrs, _wanted(info, 2)))
