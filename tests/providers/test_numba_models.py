"""Whole models on the numba provider: ``light_*`` CNNs and a BERT-like encoder.

The light models' weights are constants (``ConstantOfShape``), so their final softmax is
uniform whatever runs it; deep feature maps are compared too (added as graph outputs), at
rtol 1e-3 and atol 1e-4 relative to their magnitude. Every test checks that the numba
provider ran the nodes it should.
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
import pytest
from onnx import helper as oh
from onnx import numpy_helper

import onnxep
from onnxep.testing import kernel_test_options

NUMBA = "NumbaExecutionProvider"
LIGHT = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
F32 = onnx.TensorProto.FLOAT


def _with_feature_outputs(model: onnx.ModelProto, picks: list[float]) -> onnx.ModelProto:
    """The model with the outputs of a few Relu/Concat nodes (at fractions of depth) added,
    and the final Softmax's input in place of its output.

    The logits of these constant-weight models are huge (~1e9) and equal up to rounding, so
    the softmax of them amplifies one-ulp differences of any two correct implementations
    (summation order in a GEMM) into different probabilities; the numba provider declines
    opset-9 Softmax anyway, so its input is what it computes.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in inferred.graph.value_info}
    nodes = [
        n for n in model.graph.node if n.op_type in ("Relu", "Concat") and n.output[0] in typed
    ]
    softmax = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    del model.graph.output[:]
    model.graph.output.append(typed[softmax.input[0]])
    for p in picks:
        model.graph.output.append(typed[nodes[min(len(nodes) - 1, int(p * len(nodes)))].output[0]])
    return model


@pytest.mark.parametrize("name", ["light_squeezenet", "light_shufflenet", "light_resnet50"])
def test_light_model_matches_the_reference_path(name: str) -> None:
    model = _with_feature_outputs(onnx.load(LIGHT / f"{name}.onnx"), [0.3, 0.99])
    numba = onnxep.InferenceSession(
        model.SerializeToString(), kernel_test_options(), providers=["numba"]
    )
    placed = numba.explain().to_dict()
    fell_back = {f["op_type"] for f in placed["fallback"]}
    assert fell_back <= {"Softmax"}, placed["fallback"]  # opset-9 Softmax is declined, by design
    assert placed["nodes_per_provider"][NUMBA] >= len(model.graph.node) - 1
    reference = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    feed = {
        numba.get_inputs()[0].name: np.random.default_rng(0)
        .standard_normal((1, 3, 224, 224))
        .astype(np.float32)
    }
    names = [o.name for o in model.graph.output]
    for value, got, want in zip(
        names, numba.run(None, feed), reference.run(None, feed), strict=True
    ):
        scale = float(np.max(np.abs(want))) or 1.0
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * scale, err_msg=value)


def bert_encoder(
    layers: int = 2, hidden: int = 32, heads: int = 2, seq: int = 8, seed: int = 0
) -> onnx.ModelProto:
    """A BERT-style encoder (post-LayerNorm, erf GELU, additive attention mask) in onnx.helper."""
    rng = np.random.default_rng(seed)
    dh, ffn = hidden // heads, 4 * hidden
    inits: dict[str, np.ndarray] = {
        "qshape": np.array([0, 0, heads, dh], np.int64),
        "oshape": np.array([0, 0, hidden], np.int64),
        "scale": np.array(1 / np.sqrt(dh), np.float32),
        "sqrt2": np.array(np.sqrt(2), np.float32),
        "one": np.array(1, np.float32),
        "half": np.array(0.5, np.float32),
    }
    nodes: list[onnx.NodeProto] = []
    x = "x"

    def dense(src: str, name: str, n_in: int, n_out: int) -> str:
        inits[f"{name}_w"] = (rng.standard_normal((n_in, n_out)) * 0.05).astype(np.float32)
        inits[f"{name}_b"] = (rng.standard_normal(n_out) * 0.05).astype(np.float32)
        nodes.append(oh.make_node("MatMul", [src, f"{name}_w"], [f"{name}_mm"]))
        nodes.append(oh.make_node("Add", [f"{name}_mm", f"{name}_b"], [name]))
        return name

    def norm(src: str, name: str) -> str:
        inits[f"{name}_g"] = (1 + rng.standard_normal(hidden) * 0.1).astype(np.float32)
        inits[f"{name}_b"] = (rng.standard_normal(hidden) * 0.1).astype(np.float32)
        nodes.append(
            oh.make_node(
                "LayerNormalization", [src, f"{name}_g", f"{name}_b"], [name], epsilon=1e-12
            )
        )
        return name

    for i in range(layers):
        p = f"l{i}"
        heads_of = {}
        for part, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            d = dense(x, f"{p}_{part}", hidden, hidden)
            nodes.append(oh.make_node("Reshape", [d, "qshape"], [f"{d}_r"]))
            nodes.append(oh.make_node("Transpose", [f"{d}_r"], [f"{d}_t"], perm=perm))
            heads_of[part] = f"{d}_t"
        nodes += [
            oh.make_node("MatMul", [heads_of["q"], heads_of["k"]], [f"{p}_s"]),
            oh.make_node("Mul", [f"{p}_s", "scale"], [f"{p}_ss"]),
            oh.make_node("Add", [f"{p}_ss", "mask"], [f"{p}_sm"]),
            oh.make_node("Softmax", [f"{p}_sm"], [f"{p}_p"], axis=-1),
            oh.make_node("MatMul", [f"{p}_p", heads_of["v"]], [f"{p}_c"]),
            oh.make_node("Transpose", [f"{p}_c"], [f"{p}_ct"], perm=[0, 2, 1, 3]),
            oh.make_node("Reshape", [f"{p}_ct", "oshape"], [f"{p}_cr"]),
        ]
        attn = dense(f"{p}_cr", f"{p}_o", hidden, hidden)
        nodes.append(oh.make_node("Add", [attn, x], [f"{p}_res1"]))
        h = norm(f"{p}_res1", f"{p}_ln1")
        up = dense(h, f"{p}_up", hidden, ffn)
        nodes += [
            oh.make_node("Div", [up, "sqrt2"], [f"{p}_g1"]),
            oh.make_node("Erf", [f"{p}_g1"], [f"{p}_g2"]),
            oh.make_node("Add", [f"{p}_g2", "one"], [f"{p}_g3"]),
            oh.make_node("Mul", [up, f"{p}_g3"], [f"{p}_g4"]),
            oh.make_node("Mul", [f"{p}_g4", "half"], [f"{p}_gelu"]),
        ]
        down = dense(f"{p}_gelu", f"{p}_down", ffn, hidden)
        nodes.append(oh.make_node("Add", [down, h], [f"{p}_res2"]))
        x = norm(f"{p}_res2", f"{p}_ln2")
    graph = oh.make_graph(
        nodes,
        "bert",
        [
            oh.make_tensor_value_info("x", F32, [1, seq, hidden]),
            oh.make_tensor_value_info("mask", F32, [1, 1, 1, seq]),
        ],
        [oh.make_tensor_value_info(x, F32, [1, seq, hidden])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def bert_feeds(hidden: int = 32, seq: int = 8, seed: int = 1) -> dict[str, np.ndarray]:
    """Embeddings and an additive mask that hides the last two positions."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., -2:] = -10000.0
    return {"x": rng.standard_normal((1, seq, hidden)).astype(np.float32), "mask": mask}


def test_bert_encoder_runs_entirely_on_numba() -> None:
    model = bert_encoder()
    feeds = bert_feeds()
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["numba"])
    assert session.explain().to_dict()["nodes_per_provider"] == {NUMBA: len(model.graph.node)}
    got = session.run(None, feeds)[0]
    want = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, feeds
    )[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the second oracle")
    expected = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
