"""Recurrent kernels: LSTM, GRU and RNN (schema versions 7, 14 and 22), full ONNX semantics.

onnx's reference ops ignore ``sequence_lens``, ``activations``, ``clip`` and ``input_forget``;
these kernels implement them, following onnxruntime's CPU kernels where the spec is silent:

- directions forward, reverse and bidirectional; ``layout`` 0 (time-major) and 1
  (batch-major); optional ``B``, ``initial_h``, ``initial_c`` and peepholes ``P``;
- every ONNX activation by name, case-insensitively (Relu, Tanh, Sigmoid, Affine,
  LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus);
  ``activation_alpha``/``activation_beta`` are consumed in order, only by the functions
  that take them (as onnxruntime); a missing value takes the default of the ONNX op of
  that name, as the spec says (LeakyRelu 0.01, ThresholdedRelu 1, HardSigmoid 0.2/0.5,
  Elu 1, Affine 1/0, ScaledTanh 1/1), where onnxruntime uses 0 for ThresholdedRelu,
  Affine and ScaledTanh. Softplus does not overflow (onnxruntime's gives inf past 88);
- ``clip`` bounds every gate's input (after bias and peephole) before its activation;
- ``sequence_lens``: Y is zero past each sequence's length, Y_h/Y_c hold the state after
  its last step, the reverse direction runs each sequence from its own last step back to
  0; a length of 0 gives zeros in Y, Y_h and Y_c (not the initial state), as onnxruntime.

The input projection of all the steps is one matmul per direction (X @ W^T, biases folded
in), laid out in step order; the directions then advance together, each step costing one
stacked H @ R^T (two for GRU without ``linear_before_reset``) and in-place elementwise work
on preallocated buffers. float16 runs in float32 and is rounded at the end; bfloat16
(version 22) is declined and left to onnx.
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
#: default beta). The counts are onnxruntime's (``rnn_helpers.cc``); the defaults those of
#: the ONNX ops of the same name.
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


def _activation(
    name: str, alphas: Iterator[float], betas: Iterator[float]
) -> tuple[tuple[str, float, float], Act]:
    """The activation called ``name`` and its key (name, alpha, beta). It takes its alpha
    and beta from the iterators if it uses them (and they are not exhausted), else the
    function's defaults."""
    entry = _ACTIVATIONS.get(name.lower())
    if entry is None:
        raise ValueError(f"unknown recurrent activation {name!r}")
    build, count, alpha, beta = entry
    if count >= 1:
        alpha = next(alphas, alpha)
    if count == 2:
        beta = next(betas, beta)
    key = (name.lower(), float(alpha), float(beta))
    return key, build(*key[1:])


def _activations(
    attrs: Mapping[str, Any], defaults: Sequence[str], n_directions: int
) -> tuple[Act, ...]:
    """The op's activations (``len(defaults)`` of them), each working on stacked
    [directions, batch, width] arrays.

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
    return tuple(_stacked(acts[k::per]) for k in range(per))


def _stacked(acts: Sequence[tuple[Any, Act]]) -> Act:
    """One activation over [directions, ...] arrays from one (key, act) per direction:
    a single call when every direction uses the same function and parameters."""
    if len({key for key, _ in acts}) == 1:
        return acts[0][1]
    fns = [fn for _, fn in acts]

    def act(x: np.ndarray, out: np.ndarray) -> None:
        for d, fn in enumerate(fns):
            fn(x[d], out[d])

    return act


# --- attributes and step order -----------------------------------------------------------------
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}


@dataclasses.dataclass(frozen=True)
class _Config:
    """The attributes every recurrent op shares, parsed once."""

    reverse: tuple[bool, ...]  # per direction
    acts: tuple[Act, ...]  # the op's activations (f, g, h), over stacked directions
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


@dataclasses.dataclass(frozen=True)
class _Order:
    """Which time each direction processes at each step.

    All directions advance together, one step at a time: forward ones through times 0, 1,
    ..., reverse ones from each row's last time back to 0. Step ``s`` is valid for the
    rows whose length exceeds ``s`` (in both directions).
    """

    reverse: tuple[bool, ...]
    n_steps: int
    masks: list[np.ndarray | None]  # per step: (batch, 1) bool of running rows, None for all
    lens: np.ndarray | None  # varied per-row lengths, else None

    @classmethod
    def build(cls, reverse: tuple[bool, ...], seq: int, lens: np.ndarray | None) -> _Order:
        """The order for ``seq`` time steps and per-row lengths ``lens`` (None: all full)."""
        if lens is None or (lens == lens[0]).all():
            n = seq if lens is None else int(lens[0])
            return cls(reverse, n, [None] * n, None)
        shortest, longest = int(lens.min()), int(lens.max())
        masks = [None if s < shortest else (s < lens)[:, None] for s in range(longest)]
        return cls(reverse, longest, masks, lens)

    @property
    def in_place(self) -> bool:
        """Whether step order is time order (one forward direction): Y is written directly."""
        return self.reverse == (False,)

    def _reversed_times(self) -> np.ndarray:
        """(steps, batch): the time a reverse direction reads at each step, per row."""
        times = self.lens[None, :] - 1 - np.arange(self.n_steps)[:, None]
        return np.maximum(times, 0)

    def inputs(self, x: np.ndarray, d: int) -> np.ndarray:
        """Direction ``d``'s rows of the time-major X [seq, batch, input] in step order."""
        if not self.reverse[d]:
            return x[: self.n_steps]
        if self.lens is None:
            return x[: self.n_steps][::-1]
        return x[self._reversed_times(), np.arange(x.shape[1])]

    def project(
        self, x: np.ndarray, W: np.ndarray, bias: np.ndarray | None, dtype: np.dtype
    ) -> np.ndarray:
        """X @ W^T (+ bias) of every step, one matmul per direction, in step order:
        [directions, steps, batch, gates * hidden]."""
        dirs, width = W.shape[:2]
        xs = np.empty((dirs, self.n_steps, x.shape[1], width), dtype)
        for d in range(dirs):
            rows = self.inputs(x, d).astype(dtype, copy=False).reshape(-1, x.shape[2])
            np.matmul(rows, W[d].astype(dtype, copy=False).T, out=xs[d].reshape(-1, width))
            if bias is not None:
                xs[d] += bias[d]
        return xs

    def place(self, ys: np.ndarray, y: np.ndarray) -> None:
        """Copy per-step outputs [steps, directions, batch, hidden] to Y's time-major view
        (whose entries past each row's length are already zero)."""
        steps = self.n_steps
        for d, reverse in enumerate(self.reverse):
            if not reverse:
                y[:steps, d] = ys[:, d]
            elif self.lens is None:
                y[:steps, d] = ys[::-1, d]
            else:
                step, row = np.nonzero(np.arange(steps)[:, None] < self.lens[None, :])
                y[self._reversed_times()[step, row], d, row] = ys[step, d, row]


def _recur(
    step: Step,
    xs: np.ndarray,
    masks: Sequence[np.ndarray | None],
    h: np.ndarray,
    c: np.ndarray | None,
    ys: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``step`` over the steps of ``xs`` ([directions, steps, batch, gates]) on stacked
    [directions, batch, hidden] states, writing each step's hidden state to ``ys[s]``;
    rows past their length keep their state and output zeros. Returns the final (h, c)."""
    h_new = np.empty_like(h)
    c_new = None if c is None else np.empty_like(c)
    for s, mask in enumerate(masks):
        step(xs[:, s], h, c, h_new, c_new)
        if mask is None:
            h, h_new = h_new, h
            if c is not None:
                c, c_new = c_new, c
            if ys is not None:
                ys[s] = h
        else:
            np.copyto(h, h_new, where=mask)
            if c is not None:
                np.copyto(c, c_new, where=mask)
            if ys is not None:
                np.multiply(h_new, mask, out=ys[s])
    return h, c


# --- per-op steps, on stacked directions ---------------------------------------------------------
def _clipper(clip: float | None) -> Callable[[np.ndarray], None]:
    """In-place clip of gate inputs to [-clip, clip] (nothing without ``clip``)."""
    if clip is None:
        return lambda x: None
    return lambda x: np.clip(x, -clip, clip, out=x)


def _lstm_step(
    R: np.ndarray,
    P: np.ndarray | None,
    acts: tuple[Act, ...],
    clip: float | None,
    input_forget: bool,
    batch: int,
) -> Step:
    """One LSTM step (gates i, o, f, c; peepholes i, o, f) with its work buffers."""
    f, g, h_act = acts
    dirs, hidden = R.shape[0], R.shape[2]
    RT = R.transpose(0, 2, 1)
    gates = np.empty((dirs, batch, 4 * hidden), R.dtype)
    tmp = np.empty((dirs, batch, hidden), R.dtype)
    i, o, forget, cell = (gates[..., k * hidden : (k + 1) * hidden] for k in range(4))
    iof = gates[..., : 3 * hidden]
    clipped = _clipper(clip)
    if P is not None:
        p_i, p_o, p_f = (P[:, None, k * hidden : (k + 1) * hidden] for k in range(3))

    def peep(gate: np.ndarray, weight: np.ndarray, c: np.ndarray) -> None:
        np.multiply(c, weight, out=tmp)
        gate += tmp

    def step(
        x: np.ndarray, h: np.ndarray, c: np.ndarray, h_new: np.ndarray, c_new: np.ndarray
    ) -> None:
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
    """One GRU step (gates z, r, h). ``rb_h`` ([directions, hidden]) is the recurrence bias
    of the h gate when it stays inside the reset product (``linear_before_reset``), else
    None (it is folded into the input projection)."""
    f, g = acts
    dirs, hidden = R.shape[0], R.shape[2]
    clipped = _clipper(clip)
    tmp = np.empty((dirs, batch, hidden), R.dtype)
    if rb_h is None:  # separate buffers: each is a matmul's contiguous output
        zr = np.empty((dirs, batch, 2 * hidden), R.dtype)
        hh = np.empty((dirs, batch, hidden), R.dtype)
    else:
        zrh = np.empty((dirs, batch, 3 * hidden), R.dtype)
        zr, hh = zrh[..., : 2 * hidden], zrh[..., 2 * hidden :]
        rb_inner = rb_h[:, None, :]
    z, r = zr[..., :hidden], zr[..., hidden:]
    RT = R.transpose(0, 2, 1)
    RT_zr, RT_h = RT[..., : 2 * hidden], RT[..., 2 * hidden :]

    def step(x: np.ndarray, h: np.ndarray, c: None, h_new: np.ndarray, c_new: None) -> None:
        if rb_h is None:  # h~ = g(x Wh + (r * h) Rh + biases)
            np.matmul(h, RT_zr, out=zr)
        else:  # h~ = g(x Wh + Wbh + r * (h Rh + Rbh))
            np.matmul(h, RT, out=zrh)
        np.add(zr, x[..., : 2 * hidden], out=zr)
        clipped(zr)
        f(zr, zr)
        if rb_h is None:
            np.multiply(r, h, out=tmp)
            np.matmul(tmp, RT_h, out=hh)
        else:
            np.add(hh, rb_inner, out=hh)
            np.multiply(hh, r, out=hh)
        np.add(hh, x[..., 2 * hidden :], out=hh)
        clipped(hh)
        g(hh, hh)
        np.subtract(h, hh, out=h_new)  # h_new = (1 - z) * h~ + z * h
        h_new *= z
        h_new += hh

    return step


def _rnn_step(R: np.ndarray, acts: tuple[Act, ...], clip: float | None) -> Step:
    """One RNN step: h = f(x Wi + h Ri + biases)."""
    (f,) = acts
    RT = R.transpose(0, 2, 1)
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


def _initial(value: Any, layout: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An initial state as a [directions, batch, hidden] work copy (zeros when absent)."""
    value = None if value is None else np.asarray(value)
    if value is None or value.size == 0:
        return np.zeros(shape, dtype)
    return np.array(value if layout == 0 else value.swapaxes(0, 1), dtype=dtype)


def _time_major(array: np.ndarray, layout: int) -> np.ndarray:
    """Y ([seq, directions, batch, hidden]) or a state ([directions, batch, hidden]) as a
    time-major view of an output in the layout's shape."""
    if layout == 0:
        return array
    return array.transpose(1, 2, 0, 3) if array.ndim == 4 else array.swapaxes(0, 1)


def _outputs(
    config: _Config, seq: int, batch: int, hidden: int, n_states: int, dtype: np.dtype
) -> list[np.ndarray | None]:
    """The requested outputs, uninitialised, in the layout's shapes: Y, then the states."""
    dirs = len(config.reverse)
    y = (seq, dirs, batch, hidden) if config.layout == 0 else (batch, seq, dirs, hidden)
    state = (dirs, batch, hidden) if config.layout == 0 else (batch, dirs, hidden)
    shapes = [y, *([state] * n_states)]
    wanted = [*config.wanted, *([False] * len(shapes))]
    return [fresh(shape, dtype) if wanted[i] else None for i, shape in enumerate(shapes)]


def _run(
    config: _Config,
    X: Any,
    W: Any,
    bias: np.ndarray | None,
    sequence_lens: Any,
    initial: Sequence[Any],
    make_step: Callable[[int], Step],
    hidden: int,
) -> tuple[Any, ...]:
    """The driver of every recurrent op.

    ``bias`` is what is added to the input projection ([directions, gates * hidden]);
    ``initial`` the initial states (h, and c for LSTM; None when absent); ``make_step(batch)``
    builds the step. Returns the outputs (None where not requested).
    """
    X, W = np.asarray(X), np.asarray(W)
    if X.ndim != 3:
        raise ValueError(f"X must be 3-D, got shape {X.shape}")
    dtype = _compute_dtype(X)
    seq, batch = X.shape[:2] if config.layout == 0 else X.shape[1::-1]
    dirs = len(config.reverse)
    if W.shape[0] != dirs:
        raise ValueError(f"W has {W.shape[0]} directions; the direction attribute says {dirs}")
    lens = _lengths(sequence_lens, seq, batch)
    order = _Order.build(config.reverse, seq, lens)
    states = [_initial(v, config.layout, (dirs, batch, hidden), dtype) for v in initial]
    y, *finals = _outputs(config, seq, batch, hidden, len(initial), dtype)
    xs = order.project(X if config.layout == 0 else X.swapaxes(0, 1), W, bias, dtype)
    ys = None
    if y is not None:
        y_t = _time_major(y, config.layout)
        if order.n_steps < seq or lens is not None:
            y.fill(0)
        steps = order.n_steps
        ys = y_t[:steps] if order.in_place else np.empty((steps, dirs, batch, hidden), dtype)
    c = states[1] if len(states) > 1 else None
    results = _recur(make_step(batch), xs, order.masks, states[0], c, ys)
    if ys is not None and not order.in_place:
        order.place(ys, y_t)
    for final, state in zip(finals, results):
        if final is not None:
            _time_major(final, config.layout)[...] = state
            if lens is not None:
                _time_major(final, config.layout)[:, lens == 0] = 0  # onnxruntime's rule
    outputs = (y, *finals)
    if X.dtype != dtype:
        outputs = tuple(None if o is None else o.astype(X.dtype) for o in outputs)
    return outputs


def _optional(value: Any, dtype: np.dtype) -> np.ndarray | None:
    """An optional input as an array of ``dtype`` (None when missing or empty)."""
    if value is None:
        return None
    value = np.asarray(value)
    return None if value.size == 0 else value.astype(dtype, copy=False)


def _recurrence(R: Any, dtype: np.dtype) -> np.ndarray:
    """R ([directions, gates * hidden, hidden]) in the compute type."""
    return np.asarray(R).astype(dtype, copy=False)


def _biases(B: Any, width: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray] | None:
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
        r = _recurrence(R, dtype)
        hidden = r.shape[-1]
        biases = _biases(B, 4 * hidden, dtype)
        p = _optional(P, dtype)

        def make_step(batch: int) -> Step:
            return _lstm_step(r, p, config.acts, config.clip, input_forget, batch)

        folded = None if biases is None else biases[0] + biases[1]
        states = (initial_h, initial_c)
        return _run(config, X, W, folded, sequence_lens, states, make_step, hidden)

    return run


def make_gru(attrs: Mapping[str, Any], wanted: Sequence[bool] = (True, True)) -> Callable:
    """A GRU with its attributes parsed once: ``run(X, W, R, B=None, sequence_lens=None,
    initial_h=None)`` returns (Y, Y_h), None where ``wanted`` says it is not requested."""
    config = _Config.parse(attrs, ("Sigmoid", "Tanh"), wanted)
    linear_before_reset = bool(attrs.get("linear_before_reset", 0))

    def run(X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None,
            initial_h: Any = None) -> tuple[Any, ...]:  # fmt: skip
        dtype = _compute_dtype(np.asarray(X))
        r = _recurrence(R, dtype)
        hidden = r.shape[-1]
        biases = _biases(B, 3 * hidden, dtype)
        folded, rb_h = None, None
        if biases is not None:
            wb, rb = biases
            folded = wb.copy()
            if linear_before_reset:  # Rbh stays inside the reset product
                folded[:, : 2 * hidden] += rb[:, : 2 * hidden]
                rb_h = rb[:, 2 * hidden :]
            else:
                folded += rb
        if linear_before_reset and rb_h is None:
            rb_h = np.zeros((r.shape[0], hidden), dtype)

        def make_step(batch: int) -> Step:
            return _gru_step(r, rb_h, config.acts, config.clip, batch)

        return _run(config, X, W, folded, sequence_lens, (initial_h,), make_step, hidden)

    return run


def make_rnn(attrs: Mapping[str, Any], wanted: Sequence[bool] = (True, True)) -> Callable:
    """A simple RNN with its attributes parsed once: ``run(X, W, R, B=None,
    sequence_lens=None, initial_h=None)`` returns (Y, Y_h), None where not ``wanted``."""
    config = _Config.parse(attrs, ("Tanh",), wanted)

    def run(X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None,
            initial_h: Any = None) -> tuple[Any, ...]:  # fmt: skip
        dtype = _compute_dtype(np.asarray(X))
        r = _recurrence(R, dtype)
        biases = _biases(B, r.shape[-1], dtype)
        folded = None if biases is None else biases[0] + biases[1]

        def make_step(batch: int) -> Step:
            return _rnn_step(r, config.acts, config.clip)

        return _run(config, X, W, folded, sequence_lens, (initial_h,), make_step, r.shape[-1])

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
