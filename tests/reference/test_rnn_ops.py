"""LSTM, GRU and RNN on the hand-written recurrent kernels.

Oracles: onnxruntime's CPU kernels for float32 with layout 0. onnxruntime refuses
``layout=1`` (every op) and double (LSTM and GRU fail at run time, RNN has no kernel), so:

- layout 1 is compared with onnxruntime on the same data transposed to a layout-0 model;
- float64 is compared with :func:`_loop`, a plain per-row, per-step loop written from the
  ONNX spec (itself checked against onnxruntime here, in float32).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from .helpers import assert_close, make_model, run_onnxep, run_onnxruntime

pytest.importorskip("onnxruntime")

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
DIRS = {"forward": 1, "reverse": 1, "bidirectional": 2}
RTOL, ATOL = 1e-5, 1e-5


def _inputs(
    op: str,
    direction: str = "forward",
    *,
    seq: int = 5,
    batch: int = 3,
    size: int = 4,
    hidden: int = 6,
    bias: bool = True,
    states: bool = True,
    peepholes: bool = False,
    lens: list[int] | None = None,
    layout: int = 0,
    dtype: Any = np.float32,
    seed: int = 0,
) -> dict[str, Any]:
    """Random inputs of one recurrent node, in schema order (None for a missing one)."""
    rng = np.random.default_rng(seed)
    dirs, gates = DIRS[direction], GATES[op]

    def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.uniform(-1, 1, shape) * scale).astype(dtype)

    state = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
    inputs = {
        "X": rand(*((seq, batch, size) if layout == 0 else (batch, seq, size)), scale=2.0),
        "W": rand(dirs, gates * hidden, size, scale=0.7),
        "R": rand(dirs, gates * hidden, hidden, scale=0.7),
        "B": rand(dirs, 2 * gates * hidden) if bias else None,
        "sequence_lens": None if lens is None else np.array(lens, np.int32),
        "initial_h": rand(*state) if states else None,
    }
    if op == "LSTM":
        inputs["initial_c"] = rand(*state) if states else None
        inputs["P"] = rand(dirs, 3 * hidden) if peepholes else None
    return inputs


def _model(op: str, inputs: dict[str, Any], opset: int = 14, outputs=None, **attrs: Any):
    hidden = inputs["R"].shape[-1]
    names = OUTPUTS[op] if outputs is None else outputs
    return make_model(op, inputs, opset, outputs=names, hidden_size=hidden, **attrs)


def _ort(op: str, inputs: dict[str, Any], opset: int = 14, **attrs: Any) -> list[Any]:
    """onnxruntime's outputs; a layout-1 node runs as layout 0 on transposed data."""
    layout = attrs.pop("layout", 0)
    if layout == 1:
        inputs = _swap_batch_and_time(inputs)
    outputs = run_onnxruntime(_model(op, inputs, opset, **attrs), inputs)
    return _batch_major(outputs) if layout == 1 else outputs


def _onnxep(op: str, inputs: dict[str, Any], opset: int = 14, **attrs: Any) -> list[Any]:
    return run_onnxep(_model(op, inputs, opset, **attrs), inputs)


def _swap_batch_and_time(inputs: dict[str, Any]) -> dict[str, Any]:
    """X and the initial states from batch-major to time-major, or back."""
    swapped = dict(inputs)
    for name in ("X", "initial_h", "initial_c"):
        if swapped.get(name) is not None:
            swapped[name] = np.ascontiguousarray(swapped[name].swapaxes(0, 1))
    return swapped


def _batch_major(outputs: list[Any]) -> list[Any]:
    """Layout-0 outputs in layout 1: Y [seq, dirs, batch, hidden] -> [batch, seq, dirs,
    hidden]; the states swap their first two axes."""
    y, *states = outputs
    return [y.transpose(2, 0, 1, 3), *(s.swapaxes(0, 1) for s in states)]


def _compare(op: str, inputs: dict[str, Any], opset: int = 14, **attrs: Any) -> None:
    assert_close(_onnxep(op, inputs, opset, **attrs), _ort(op, inputs, opset, **attrs), RTOL, ATOL)


# --- the spec, one row and one step at a time --------------------------------------------------
_ACTS = {  # name -> (fn(x, alpha, beta), how many of alpha/beta it takes, defaults)
    "relu": (lambda x, a, b: np.maximum(x, 0), 0, (0, 0)),
    "tanh": (lambda x, a, b: np.tanh(x), 0, (0, 0)),
    "sigmoid": (lambda x, a, b: 1 / (1 + np.exp(-x)), 0, (0, 0)),
    "affine": (lambda x, a, b: a * x + b, 2, (1.0, 0.0)),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), 1, (0.01, 0)),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0), 1, (1.0, 0)),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 2, (1.0, 1.0)),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), 2, (0.2, 0.5)),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)), 1, (1.0, 0)),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), 0, (0, 0)),
    "softplus": (lambda x, a, b: np.log1p(np.exp(x)), 0, (0, 0)),
}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _spec_acts(op: str, dirs: int, attrs: dict[str, Any]) -> list[list[Any]]:
    names = attrs.get("activations") or _DEFAULT_ACTS[op] * dirs
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    acts = []
    for name in names:
        fn, count, (alpha, beta) = _ACTS[name.lower()]
        if count >= 1 and alphas:
            alpha = alphas.pop(0)
        if count == 2 and betas:
            beta = betas.pop(0)
        acts.append(lambda x, fn=fn, a=alpha, b=beta: fn(x, a, b))
    per = len(_DEFAULT_ACTS[op])
    return [acts[d * per : (d + 1) * per] for d in range(dirs)]


def _spec_step(op: str, xt, h, c, w, r, wb, rb, p, acts, clip, attrs):
    """One step of one row by the ONNX formulas; returns the new (h, c)."""
    cl = (lambda v: v) if clip is None else (lambda v: np.clip(v, -clip, clip))

    def pre(k: int) -> np.ndarray:
        return w[k] @ xt + r[k] @ h + wb[k] + rb[k]

    if op == "RNN":
        return acts[0](cl(pre(0))), c
    if op == "GRU":
        f, g = acts
        z, reset = f(cl(pre(0))), f(cl(pre(1)))
        if attrs.get("linear_before_reset", 0):
            candidate = g(cl(w[2] @ xt + wb[2] + reset * (r[2] @ h + rb[2])))
        else:
            candidate = g(cl(w[2] @ xt + r[2] @ (reset * h) + rb[2] + wb[2]))
        return (1 - z) * candidate + z * h, c
    f, g, hact = acts
    p_i, p_o, p_f = np.split(p, 3)
    i = f(cl(pre(0) + p_i * c))
    forget = 1 - i if attrs.get("input_forget", 0) else f(cl(pre(2) + p_f * c))
    c = forget * c + i * g(cl(pre(3)))
    return f(cl(pre(1) + p_o * c)) * hact(c), c


def _loop(op: str, inputs: dict[str, Any], **attrs: Any) -> list[np.ndarray]:
    """The ONNX formulas, row by row and step by step, in float64."""
    layout = attrs.get("layout", 0)
    x = {k: v if v is None or v.dtype.kind != "f" else v.astype(np.float64)
         for k, v in (_swap_batch_and_time(inputs) if layout == 1 else inputs).items()}  # fmt: skip
    seq, batch, _ = x["X"].shape
    dirs, hidden, g = x["W"].shape[0], x["R"].shape[-1], GATES[op]
    zeros = np.zeros((dirs, batch, hidden))
    B = np.zeros((dirs, 2 * g * hidden)) if x["B"] is None else x["B"]
    H0 = zeros if x["initial_h"] is None else x["initial_h"]
    C0 = zeros if x.get("initial_c") is None else x["initial_c"]
    P = np.zeros((dirs, 3 * hidden)) if x.get("P") is None else x["P"]
    lens = [seq] * batch if x["sequence_lens"] is None else list(x["sequence_lens"])
    acts = _spec_acts(op, dirs, attrs)
    direction = attrs.get("direction", "forward")
    Y, Yh, Yc = np.zeros((seq, dirs, batch, hidden)), np.zeros_like(zeros), np.zeros_like(zeros)
    for d, n in itertools.product(range(dirs), range(batch)):
        reverse = direction == "reverse" or d == 1
        h, c = H0[d, n], C0[d, n]
        weights = (np.split(x["W"][d], g), np.split(x["R"][d], g), *np.split(B[d], 2 * g))
        w, r, wb, rb = weights[0], weights[1], weights[2 : 2 + g], weights[2 + g :]
        for t in reversed(range(lens[n])) if reverse else range(lens[n]):
            h, c = _spec_step(op, x["X"][t, n], h, c, w, r, wb, rb, P[d], acts[d],
                              attrs.get("clip"), attrs)  # fmt: skip
            Y[t, d, n] = h
        if lens[n]:
            Yh[d, n], Yc[d, n] = h, c
    outputs = [Y, Yh, Yc][: len(OUTPUTS[op])]
    outputs = _batch_major(outputs) if layout == 1 else outputs
    return [o.astype(inputs["X"].dtype) for o in outputs]


# --- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_the_loop_oracle_matches_onnxruntime(op):
    """The float64 oracle is right: it agrees with onnxruntime on a case using everything."""
    attrs = {"direction": "bidirectional", "clip": 1.5}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    inputs = _inputs(op, "bidirectional", peepholes=True, lens=[5, 2, 0, 4], batch=4)
    assert_close(_loop(op, inputs, **attrs), _ort(op, inputs, **attrs), RTOL, ATOL)


@pytest.mark.parametrize("opset", [7, 14, 22])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_directions_and_opsets(op, direction, opset):
    _compare(op, _inputs(op, direction), opset, direction=direction)


@pytest.mark.parametrize(("seq", "batch", "size", "hidden"), [(1, 1, 3, 2), (30, 2, 16, 32)])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_shapes(op, seq, batch, size, hidden):
    """One step of one row, and a longer sequence (errors must not build up)."""
    lens = [seq, max(seq - 7, 0)][:batch]
    inputs = _inputs(op, "bidirectional", seq=seq, batch=batch, size=size, hidden=hidden,
                     lens=lens, peepholes=True)  # fmt: skip
    _compare(op, inputs, direction="bidirectional")


OPTIONAL = [  # op, bias, initial states, peepholes
    *((op, b, s, False) for op in GATES for b in (False, True) for s in (False, True)),
    ("LSTM", True, True, True),
    ("LSTM", False, False, True),
]


@pytest.mark.parametrize(("op", "bias", "states", "peepholes"), OPTIONAL)
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_optional_inputs(op, direction, bias, states, peepholes):
    inputs = _inputs(op, direction, bias=bias, states=states, peepholes=peepholes)
    _compare(op, inputs, direction=direction)


@pytest.mark.parametrize("missing", ["initial_h", "initial_c"])
def test_lstm_with_one_initial_state(missing):
    inputs = _inputs("LSTM", "bidirectional", peepholes=True, bias=False, lens=[5, 1, 3])
    inputs[missing] = None
    _compare("LSTM", inputs, direction="bidirectional")


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_empty_optional_inputs_count_as_missing(op):
    """A zero-size B (or P) is treated as absent."""
    inputs = _inputs(op, bias=False)
    expected = _ort(op, inputs)
    inputs["B"] = np.zeros((1, 0), np.float32)
    if op == "LSTM":
        inputs["P"] = np.zeros((1, 0), np.float32)
    assert_close(_onnxep(op, inputs), expected, RTOL, ATOL)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout_1(op, direction):
    inputs = _inputs(op, direction, layout=1, peepholes=True, lens=[5, 3, 1])
    _compare(op, inputs, direction=direction, layout=1)


LENS = [[5, 5, 5, 5], [3, 3, 3, 3], [5, 2, 0, 3], [1, 5, 4, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("lens", LENS, ids=["-".join(map(str, x)) for x in LENS])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_sequence_lens(op, direction, lens):
    """Y is zero past each row's length; the states are those after its last step; the
    reverse direction starts from each row's own last step; a length of 0 gives zeros."""
    inputs = _inputs(op, direction, batch=4, lens=lens, peepholes=True)
    _compare(op, inputs, direction=direction)


def test_a_zero_length_sequence_ends_with_zero_states_not_the_initial_ones():
    inputs = _inputs("LSTM", "bidirectional", lens=[0, 5, 2])
    y, y_h, y_c = _onnxep("LSTM", inputs, direction="bidirectional")
    assert not y[:, :, 0].any() and not y_h[:, 0].any() and not y_c[:, 0].any()
    assert not y[2:, :, 2].any() and y[:2, :, 2].all()


ACTIVATION_CASES = {
    "LSTM": [
        (
            ["Relu", "Affine", "LeakyRelu", "HardSigmoid", "Elu", "Softsign"],
            [0.5, 0.3, 0.1, 0.9],
            [0.2, 0.4],
        ),
        (
            ["ScaledTanh", "ThresholdedRelu", "Softplus", "Sigmoid", "Tanh", "Affine"],
            [0.8, 0.2, 1.3],
            [1.2, -0.1],
        ),
        (["HardSigmoid", "Elu", "LeakyRelu", "Sigmoid", "Tanh", "Tanh"], [], []),
    ],
    "GRU": [
        (["Affine", "LeakyRelu", "HardSigmoid", "Elu"], [0.5, 0.3, 0.1, 0.9], [0.2, 0.4]),
        (["ScaledTanh", "ThresholdedRelu", "Softplus", "Softsign"], [0.8, 0.2], [1.2]),
        (["HardSigmoid", "Relu", "Sigmoid", "Elu"], [], []),
        (["HardSigmoid", "Relu", "Sigmoid", "ScaledTanh"], [0.2, 1.1], [0.3, 0.9]),
    ],
    "RNN": [
        (["Affine", "LeakyRelu"], [0.5, 0.3], [0.2]),
        (["ScaledTanh", "ThresholdedRelu"], [0.8, 0.2], [1.2]),
        (["Elu", "HardSigmoid"], [0.7], []),
        (["Softsign", "Softplus"], [], []),
        (["Relu", "Sigmoid"], [], []),
    ],
}


@pytest.mark.parametrize(
    ("op", "case"), [(op, i) for op, cases in ACTIVATION_CASES.items() for i in range(len(cases))]
)
def test_activations(op, case):
    """Named activations per direction; alpha/beta go in order to the functions that take
    them, the others keep their defaults (LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1)."""
    names, alphas, betas = ACTIVATION_CASES[op][case]
    attrs: dict[str, Any] = {"direction": "bidirectional", "activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    inputs = _inputs(op, "bidirectional", peepholes=True, lens=[5, 2, 4])
    _compare(op, inputs, **attrs)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_activation_defaults_follow_the_spec(op):
    """Without alpha/beta, ThresholdedRelu takes alpha 1, Affine 1/0 and ScaledTanh 1/1 (the
    defaults of the ONNX ops, as the spec says). onnxruntime uses 0 for all of these (Affine
    and ScaledTanh then output 0): the spec loop is the oracle."""
    names = {
        "LSTM": ["ThresholdedRelu", "ScaledTanh", "Affine", "HardSigmoid", "Elu", "LeakyRelu"],
        "GRU": ["Affine", "ScaledTanh", "ThresholdedRelu", "Elu"],
        "RNN": ["ThresholdedRelu", "ScaledTanh"],
    }[op]
    attrs = {"direction": "bidirectional", "activations": names}
    inputs = _inputs(op, "bidirectional", peepholes=True, lens=[5, 2, 4])
    assert_close(_onnxep(op, inputs, **attrs), _loop(op, inputs, **attrs), RTOL, ATOL)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_activation_names_are_case_insensitive(op):
    """onnxruntime's LSTM and GRU take any case; its RNN only the spec's (compared there)."""
    names = {"LSTM": ["sigmoid", "TANH", "leakyRelu"], "GRU": ["hardsigmoid", "TANH"]}
    names["RNN"] = ["leakyrelu"]
    proper = {"leakyrelu": "LeakyRelu"}
    inputs = _inputs(op)
    actual = _onnxep(op, inputs, activations=names[op], activation_alpha=[0.3])
    spelled = [proper.get(n.lower(), n) for n in names[op]] if op == "RNN" else names[op]
    assert_close(actual, _ort(op, inputs, activations=spelled, activation_alpha=[0.3]), RTOL, ATOL)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_clip(op, direction):
    inputs = _inputs(op, direction, peepholes=True, lens=[5, 1, 3])
    _compare(op, inputs, direction=direction, clip=0.7)


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_input_forget(direction, peepholes):
    inputs = _inputs("LSTM", direction, peepholes=peepholes)
    _compare("LSTM", inputs, direction=direction, input_forget=1)
    _compare("LSTM", inputs, direction=direction, input_forget=1, clip=0.5)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_gru_linear_before_reset(direction, bias):
    inputs = _inputs("GRU", direction, bias=bias, lens=[4, 5, 2])
    _compare("GRU", inputs, direction=direction, linear_before_reset=1)


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_float64_against_the_loop(op, layout):
    """onnxruntime has no double recurrent kernels: the spec loop is the oracle."""
    attrs: dict[str, Any] = {"direction": "bidirectional", "layout": layout, "clip": 2.0}
    attrs.update({"GRU": {"linear_before_reset": 1}, "LSTM": {"input_forget": 1}}.get(op, {}))
    inputs = _inputs(op, "bidirectional", peepholes=True, lens=[5, 2, 0], layout=layout,
                     dtype=np.float64)  # fmt: skip
    actual = _onnxep(op, inputs, **attrs)
    assert all(a.dtype == np.float64 for a in actual)
    assert_close(actual, _loop(op, inputs, **attrs), 1e-12, 1e-12)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_float16_computes_in_float32(op):
    inputs = _inputs(op, "bidirectional", dtype=np.float16, lens=[5, 3, 1])
    actual = _onnxep(op, inputs, direction="bidirectional")
    wide = {k: v if v is None or v.dtype != np.float16 else v.astype(np.float32)
            for k, v in inputs.items()}  # fmt: skip
    expected = _onnxep(op, wide, direction="bidirectional")
    assert_close(actual, [e.astype(np.float16) for e in expected], 0, 1e-3)


@pytest.mark.parametrize("wanted", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)])
def test_outputs_not_requested(wanted):
    inputs = _inputs("LSTM", "bidirectional", lens=[5, 2, 3])
    full = _onnxep("LSTM", inputs, direction="bidirectional")
    names = [name if keep else "" for name, keep in zip(OUTPUTS["LSTM"], wanted)]
    while not names[-1]:
        names.pop()
    actual = _onnxep("LSTM", inputs, outputs=names, direction="bidirectional")
    assert_close(actual, [f for f, keep in zip(full, wanted) if keep], 0, 0)


def test_bad_sequence_lens_are_refused():
    inputs = _inputs("GRU", lens=[6, 1, 1])
    with pytest.raises(Exception, match="sequence_lens"):
        _onnxep("GRU", inputs)


def test_unknown_activation_is_refused():
    with pytest.raises(Exception, match="Swish"):
        _onnxep("RNN", _inputs("RNN"), activations=["Swish"])


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_dynamic_quantize_lstm_with_sequence_lens_and_activations(direction, tmp_path):
    """quantize_dynamic's LSTM runs on the same kernel: sequence_lens and activations too
    (onnxruntime also quantizes the activations inside the op: a quantization step apart)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    inputs = _inputs("LSTM", direction, lens=[5, 2, 4], states=False)
    acts = ["Sigmoid", "Softsign", "Tanh"] * DIRS[direction]
    weights = ("W", "R", "B")
    float_model = _model("LSTM", inputs, direction=direction, activations=acts)
    for tensor in list(float_model.graph.input):
        if tensor.name in weights:
            float_model.graph.input.remove(tensor)
            array = inputs[tensor.name]
            float_model.graph.initializer.append(onnx.numpy_helper.from_array(array, tensor.name))
    float_path, quantized_path = tmp_path / "lstm.onnx", tmp_path / "lstm_q.onnx"
    onnx.save(float_model, float_path)
    quantize_dynamic(float_path, quantized_path, weight_type=QuantType.QInt8)
    quantized = onnx.load(quantized_path)
    assert [n.op_type for n in quantized.graph.node] == ["DynamicQuantizeLSTM"]
    feeds = {k: v for k, v in inputs.items() if k not in weights}
    assert_close(run_onnxep(quantized, feeds), run_onnxruntime(quantized, feeds), 0, 2e-2)
