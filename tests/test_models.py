"""The model builders of ``onnxep.models``: valid ONNX, and the maths they claim."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxep
from onnxep.models import (
    ADD_CHAIN_INPUT,
    ENCODER_INPUT,
    build_add_chain,
    build_encoder,
    encoder_inputs,
    light_model_paths,
)

ort = pytest.importorskip("onnxruntime", reason="the builders are checked against onnxruntime")

SMALL = {"layers": 2, "hidden": 64, "heads": 4, "seq": 8, "batch": 2, "ffn": 128}


def _ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers by name without the builder's numeric suffix (``layer0.ln1.gamma``)."""
    return {t.name.rsplit("_", 1)[0]: numpy_helper.to_array(t) for t in model.graph.initializer}


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _encoder_numpy(x: np.ndarray, w: dict[str, np.ndarray], layers: int, heads: int) -> np.ndarray:
    """An independent float64 BERT encoder written from the textbook formulas."""
    x = x.astype(np.float64)
    batch, seq, hidden = x.shape
    erf = np.vectorize(math.erf)

    def lin(v: np.ndarray, stem: str) -> np.ndarray:
        return v @ w[f"{stem}.weight"] + w[f"{stem}.bias"]

    def split(v: np.ndarray) -> np.ndarray:
        return v.reshape(batch, seq, heads, hidden // heads).transpose(0, 2, 1, 3)

    for i in range(layers):
        att = f"layer{i}.attention"
        q, k, v = (split(lin(x, f"{att}.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hidden // heads)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        x = _layer_norm(
            x + lin(context, f"{att}.output"), w[f"layer{i}.ln1.gamma"], w[f"layer{i}.ln1.beta"]
        )
        inner = lin(x, f"layer{i}.intermediate")
        inner = inner * 0.5 * (1 + erf(inner / math.sqrt(2)))
        x = _layer_norm(
            x + lin(inner, f"layer{i}.ffn_out"), w[f"layer{i}.ln2.gamma"], w[f"layer{i}.ln2.beta"]
        )
    return x


def test_encoder_is_valid_onnx_with_symbolic_dims() -> None:
    model = build_encoder(**SMALL)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert model.opset_import[0].version == 17
    (value,) = model.graph.input
    dims = value.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "seq", 64]
    ops = {n.op_type for n in model.graph.node}
    expected = {
        "MatMul",
        "Add",
        "Reshape",
        "Transpose",
        "Div",
        "Softmax",
        "LayerNormalization",
        "Erf",
        "Mul",
    }
    assert expected <= ops


def test_encoder_matches_textbook_formulas_in_onnxruntime() -> None:
    model = build_encoder(**SMALL)
    feeds = encoder_inputs(model, seed=3)
    assert feeds[ENCODER_INPUT].shape == (2, 8, 64)
    got = _ort_run(model, feeds)
    expected = _encoder_numpy(feeds[ENCODER_INPUT], _weights(model), layers=2, heads=4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert got.std() > 0.5  # LayerNorm output, not a degenerate constant


def test_encoder_runs_other_shapes_and_seeds_differ() -> None:
    model = build_encoder(layers=1, hidden=32, heads=2, ffn=64, seq=4)
    x = np.random.default_rng(0).standard_normal((3, 5, 32)).astype(np.float32)
    assert _ort_run(model, {ENCODER_INPUT: x}).shape == (3, 5, 32)
    query = "layer0.attention.query.weight"
    first, again, other = (
        _weights(build_encoder(layers=1, hidden=32, heads=2, ffn=64, seed=s))[query]
        for s in (1, 1, 2)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_encoder_runs_in_onnxep_like_onnxruntime() -> None:
    model = build_encoder(layers=1, hidden=32, heads=4, seq=6, ffn=64)
    feeds = encoder_inputs(model)
    got = onnxep.InferenceSession(model).run(None, feeds)[0]
    np.testing.assert_allclose(got, _ort_run(model, feeds), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"opset": 16}, {"hidden": 30, "heads": 4}, {"layers": 0}], ids=str
)
def test_encoder_rejects_bad_configs(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"opset|divisible"):
        build_encoder(**kwargs)


def test_add_chain_adds_the_constant_n_times() -> None:
    model = build_add_chain(length=50, size=4)
    onnx.checker.check_model(model)
    assert len(model.graph.node) == 50
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(_ort_run(model, {ADD_CHAIN_INPUT: x}), x + 50 * 1e-3, rtol=1e-5)


def test_light_models_are_found_with_static_input_shapes() -> None:
    models = light_model_paths()
    if not models:
        pytest.skip("this onnx build ships without backend test data")
    names = {m.name for m in models}
    assert {"resnet50", "squeezenet", "vgg19"} <= names
    for m in models:
        assert m.path.is_file()
        (shape,) = m.input_shapes.values()
        assert len(shape) == 4
        assert all(d > 0 for d in shape)
