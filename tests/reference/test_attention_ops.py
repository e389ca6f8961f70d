"""onnxruntime's transformer contrib ops (Attention, MultiHeadAttention,
EmbedLayerNormalization, SkipSimplifiedLayerNormalization, RotaryEmbedding, MatMulNBits, ...)
against onnxruntime's CPU kernels, one node at a time, then a tiny BERT that onnxruntime's
transformers optimiser fuses."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxep
from onnxep.contrib_types import annotate_contrib_outputs
from onnxep.reference import attention_ops

from .helpers import assert_close, run_onnxep, run_onnxruntime

pytest.importorskip("onnxruntime", reason="the contrib ops are compared with onnxruntime")

MS = "com.microsoft"
#: onnxruntime adds mask_filter_value (-10000) in float32, whose spacing there is ~1e-3: a
#: fully masked row's scores keep only that precision, on both sides.
MASKED_ROW_ATOL = 2e-3
F16_TOL = 3e-3
#: Outputs whose type is fixed whatever the inputs' (by name, in these tests).
OUTPUT_TYPES = {
    "mask_index": TensorProto.INT32,
    "mean": TensorProto.FLOAT,
    "inv_std_var": TensorProto.FLOAT,
}


def _model(
    op: str,
    inputs: Mapping[str, Any],
    outputs: Sequence[str] = ("y",),
    constants: Sequence[str] = (),
    **attrs: Any,
) -> onnx.ModelProto:
    """One ``com.microsoft`` node over ``inputs`` (name -> array, None for a missing optional
    input); names in ``constants`` are initializers; an empty output name skips that output.
    Outputs have the first float input's type (or their OUTPUT_TYPES one) and no shape."""
    names = list(inputs)
    while names and inputs[names[-1]] is None:
        names.pop()
    node = helper.make_node(
        op,
        [n if inputs[n] is not None else "" for n in names],
        list(outputs),
        domain=MS,
        **attrs,
    )
    graph_inputs, initializers = [], []
    for name in names:
        if inputs[name] is None:
            continue
        array = np.asarray(inputs[name])
        if name in constants:
            initializers.append(numpy_helper.from_array(array, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(array.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, array.shape))
    floats = [np.asarray(v).dtype for v in inputs.values() if v is not None]
    elem = helper.np_dtype_to_tensor_dtype(next(d for d in floats if d.kind == "f"))
    graph_outputs = [
        helper.make_tensor_value_info(o, OUTPUT_TYPES.get(o, elem), None) for o in outputs if o
    ]
    graph = helper.make_graph([node], op, graph_inputs, graph_outputs, initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def _check(
    op: str,
    inputs: Mapping[str, Any],
    outputs: Sequence[str] = ("y",),
    constants: Sequence[str] = (),
    *,
    rtol: float = 1e-5,
    atol: float = 1e-4,
    oracle_inputs: Mapping[str, Any] | None = None,
    **attrs: Any,
) -> list[Any]:
    """Run the node on onnxep's hand-written kernel and on onnxruntime's CPU kernel (over
    ``oracle_inputs`` when given: the same node with inputs onnxruntime needs) and compare."""
    model = _model(op, inputs, outputs, constants, **attrs)
    actual = run_onnxep(model, inputs)
    oracle_model = model
    if oracle_inputs is not None:
        oracle_model = _model(op, oracle_inputs, outputs, constants, **attrs)
    expected = run_onnxruntime(oracle_model, oracle_inputs or inputs)
    assert_close(actual, expected, rtol, atol)
    return actual


def _refusal(
    op: str, inputs: Mapping[str, Any], outputs: Sequence[str] = ("y",), **attrs: Any
) -> str:
    """The message of onnxep's refusal to build a session for the node."""
    model = _model(op, inputs, outputs, **attrs)
    with pytest.raises(onnxep.errors.NotImplemented) as err:
        onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    return str(err.value)


def _rand(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _i32(values: Any) -> np.ndarray:
    return np.array(values, np.int32)


def _half(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs with float32 arrays as float16."""
    return {
        k: v.astype(np.float16) if v is not None and v.dtype == np.float32 else v
        for k, v in inputs.items()
    }


# --- Attention ------------------------------------------------------------------------------
B, S, N = 2, 3, 2


def _attention_inputs(
    hidden: int = 8,
    width: int | None = None,
    seq: int = S,
    *,
    input_hidden: int | None = None,
    bias: bool = True,
    mask: Any = None,
    past: int = 0,
    attention_bias: Any = None,
) -> dict[str, Any]:
    """Attention's inputs in schema order: input (B, seq, input_hidden), packed weights
    (input_hidden, width), bias, mask, a past of ``past`` positions, attention_bias."""
    input_hidden = input_hidden or hidden
    width = width or 3 * hidden
    return {
        "x": _rand(B, seq, input_hidden),
        "w": _rand(input_hidden, width, seed=1, scale=0.5),
        "b": _rand(width, seed=2) if bias else None,
        "mask": mask,
        "past": _rand(2, B, N, past, hidden // N, seed=3) if past else None,
        "attention_bias": attention_bias,
    }


ATTENTION_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {}),
    "mask_1d_ends": ({"mask": _i32([2, 1])}, {}),
    "mask_1d_ends_and_starts": ({"mask": _i32([3, 2, 1, 0])}, {}),
    "mask_1d_first_batch_entries": ({"mask": _i32([2, 1, 0, 0, 0, 0, 0, 0])}, {}),
    "mask_1d_past_the_end": ({"mask": _i32([7, 3])}, {}),
    "mask_2d": ({"mask": _i32([[1, 0, 1], [2, 1, 1]])}, {}),
    "mask_2d_broadcast_dummy": ({"mask": _i32([[1], [0]])}, {}),
    "mask_3d": ({"mask": _i32([[[1, 0, 1], [0, 1, 1], [1, 1, 0]]] * 2)}, {}),
    "causal": ({}, {"unidirectional": 1}),
    "causal_and_mask_2d": ({"mask": _i32([[1, 0, 1], [1, 1, 0]])}, {"unidirectional": 1}),
    "causal_and_mask_1d": ({"mask": _i32([2, 1])}, {"unidirectional": 1}),
    "past": ({"past": 4}, {}),
    "past_causal": ({"past": 4}, {"unidirectional": 1}),
    "past_causal_mask_2d": (
        {"past": 4, "mask": _i32([[1, 0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1, 1]])},
        {"unidirectional": 1},
    ),
    "past_mask_1d": ({"past": 4, "mask": _i32([5, 7])}, {"unidirectional": 1}),
    "past_mask_3d": (
        {"past": 2, "mask": _i32(np.random.default_rng(3).random((B, S, 5)) > 0.3)},
        {"unidirectional": 1},
    ),
    "past_single_token": ({"past": 5, "seq": 1}, {"unidirectional": 1}),
    "attention_bias": ({"attention_bias": _rand(B, N, S, S, seed=9)}, {}),
    "attention_bias_batch_broadcast": ({"attention_bias": _rand(1, N, S, S, seed=9)}, {}),
    "attention_bias_head_broadcast": ({"attention_bias": _rand(B, 1, S, S, seed=9)}, {}),
    "attention_bias_and_mask": (
        {"attention_bias": _rand(B, N, S, S, seed=9), "mask": _i32([[1, 1, 0], [1, 0, 1]])},
        {"unidirectional": 1},
    ),
    "scale": ({}, {"scale": 0.3}),
    "mask_filter_value": ({"mask": _i32([[1, 0, 1], [1, 1, 0]])}, {"mask_filter_value": -3.0}),
    "v_hidden_size": ({"width": 8 + 8 + 4}, {"qkv_hidden_sizes": [8, 8, 4]}),
    "odd_head_size": ({"hidden": 6, "input_hidden": 5}, {}),
    "three_heads_of_five": ({"hidden": 15}, {"num_heads": 3}),
    "pruned_input_hidden": ({"input_hidden": 12}, {}),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_CASES))
def test_attention_matches_onnxruntime(case):
    build, attrs = ATTENTION_CASES[case]
    outputs = ["y", "present"] if build.get("past") else ["y"]
    attrs = {"num_heads": N, **attrs}
    _check("Attention", _attention_inputs(**build), outputs, constants=("w", "b"), **attrs)


@pytest.mark.parametrize(
    ("mask", "attrs"),
    [
        (_i32([0, 3]), {}),  # a zero length: the whole row masked
        (_i32([1, 3, 3, 0]), {}),  # a start past the end
        (_i32([[0, 0, 0], [1, 1, 1]]), {}),
        (_i32([[0, 0, 0], [1, 0, 1]]), {"unidirectional": 1}),
        (_i32([[[1, 0, 1], [0, 0, 0], [0, 0, 0]]] * 2), {"unidirectional": 1}),
    ],
    ids=["1d_zero_length", "1d_start_past_end", "2d_row", "2d_row_causal", "3d_rows_causal"],
)
def test_attention_fully_masked_rows_match_onnxruntime(mask, attrs):
    """A fully masked row is a softmax over the raw scores shifted by mask_filter_value (and
    a causally hidden key stays hidden), as onnxruntime computes it; not zeros."""
    inputs = _attention_inputs(mask=mask)
    _check("Attention", inputs, constants=("w", "b"), atol=MASKED_ROW_ATOL, num_heads=N, **attrs)
    exact = {**attrs, "mask_filter_value": -4.0}  # a small fill keeps float32's precision
    _check("Attention", inputs, constants=("w", "b"), num_heads=N, **exact)


def test_attention_without_bias_is_a_zero_bias():
    """onnxruntime's CPU kernel crashes without a bias: compare with a zero one."""
    inputs = _attention_inputs(bias=False, mask=_i32([[1, 1, 0], [1, 0, 1]]))
    zero_bias = {**inputs, "b": np.zeros(24, np.float32)}
    _check(
        "Attention",
        inputs,
        constants=("w",),
        oracle_inputs=zero_bias,
        num_heads=N,
        unidirectional=1,
    )


def test_attention_float16_matches_onnxruntime():
    inputs = _half(_attention_inputs(mask=_i32([2, 3])))
    _check("Attention", inputs, constants=("w", "b"), rtol=F16_TOL, atol=F16_TOL, num_heads=N)


def test_attention_weights_may_be_fed():
    inputs = _attention_inputs(past=2)
    _check("Attention", inputs, ["y", "present"], num_heads=N, unidirectional=1)


@pytest.mark.parametrize(
    ("extra", "attrs", "reason"),
    [
        ({}, {"do_rotary": 1}, "do_rotary=1 is not implemented"),
        ({"mask": np.ones((B, 1, 4, 4), np.int32)}, {}, "4-D (Megatron) mask_index"),
        ({"past": 4}, {"past_present_share_buffer": 1}, "past_present_share_buffer=1"),
    ],
    ids=["do_rotary", "mask_4d", "share_buffer"],
)
def test_attention_declines_what_onnxruntime_cpu_refuses(extra, attrs, reason):
    message = _refusal("Attention", _attention_inputs(**extra), num_heads=N, **attrs)
    assert "com.microsoft.Attention-1 is implemented, but not for this node" in message
    assert reason in message


# --- MultiHeadAttention ---------------------------------------------------------------------
def _heads(x: np.ndarray) -> np.ndarray:
    """(B, L, D) -> (B, N, L, D / N)."""
    b, seq, hidden = x.shape
    return x.reshape(b, seq, N, hidden // N).transpose(0, 2, 1, 3).copy()


def _mha_inputs(
    hidden: int = 8,
    v_hidden: int | None = None,
    kv_seq: int = S,
    *,
    bias: bool = True,
    mask: Any = None,
    attention_bias: Any = None,
    past: int = 0,
    kv_4d: bool = False,
) -> dict[str, Any]:
    """MultiHeadAttention's inputs in schema order: query (B, S, hidden), key and value
    (B, kv_seq, hidden or v_hidden; in heads when ``kv_4d``), bias, the masks, a past."""
    v_hidden = v_hidden or hidden
    key, value = _rand(B, kv_seq, hidden, seed=1), _rand(B, kv_seq, v_hidden, seed=2)
    return {
        "query": _rand(B, S, hidden),
        "key": _heads(key) if kv_4d else key,
        "value": _heads(value) if kv_4d else value,
        "bias": _rand(2 * hidden + v_hidden, seed=3) if bias else None,
        "key_padding_mask": mask,
        "attention_bias": attention_bias,
        "past_key": _rand(B, N, past, hidden // N, seed=4) if past else None,
        "past_value": _rand(B, N, past, v_hidden // N, seed=5) if past else None,
    }


MHA_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {}),
    "no_bias": ({"bias": False}, {}),
    "cross": ({"kv_seq": 5}, {}),
    "cross_v_hidden": ({"kv_seq": 5, "v_hidden": 4}, {}),
    "mask_1d": ({"mask": _i32([2, 1])}, {}),
    "mask_1d_first_batch_entries": ({"mask": _i32([2, 1, 0, 0, 0, 0, 0, 0])}, {}),
    "mask_2d": ({"mask": _i32([[1, 0, 1], [1, 1, 0]])}, {}),
    "mask_3d": ({"mask": _i32([[[1, 0, 1], [0, 1, 1], [1, 1, 0]]] * 2)}, {}),
    "attention_bias": ({"attention_bias": _rand(B, N, S, S, seed=9)}, {}),
    "attention_bias_broadcast": ({"attention_bias": _rand(1, 1, S, S, seed=9)}, {}),
    "causal": ({}, {"unidirectional": 1}),
    "causal_longer_keys": ({"kv_seq": 5}, {"unidirectional": 1}),  # the last row sees all
    "causal_shorter_keys": ({"kv_seq": 2}, {"unidirectional": 1}),
    "past": ({"past": 4}, {}),
    "past_causal_mask": (
        {"past": 4, "mask": _i32([[1, 0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1, 1]])},
        {"unidirectional": 1},
    ),
    "past_mask_1d": ({"past": 4, "mask": _i32([5, 7])}, {}),
    "past_attention_bias": ({"past": 4, "attention_bias": _rand(B, N, S, 7, seed=9)}, {}),
    "kv_in_heads": ({"kv_4d": True, "bias": False, "kv_seq": 5}, {}),
    "kv_in_heads_query_bias": ({"kv_4d": True, "kv_seq": 5}, {}),
    "kv_in_heads_past": ({"kv_4d": True, "bias": False, "kv_seq": 5, "past": 4}, {}),
    "scale": ({}, {"scale": 0.2}),
    "odd_head_size": ({"hidden": 6}, {}),
}


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_multi_head_attention_matches_onnxruntime(case):
    build, attrs = MHA_CASES[case]
    inputs = _mha_inputs(**build)
    _check(
        "MultiHeadAttention", inputs, ["y", "present_key", "present_value"], num_heads=N, **attrs
    )


def test_multi_head_attention_qk_output_matches_onnxruntime():
    """qk: the scores before the softmax, masks included (a causally hidden key holds
    float32's lowest value, as onnxruntime writes)."""
    inputs = _mha_inputs(mask=_i32([[1, 0, 1], [1, 1, 1]]))
    model = _model("MultiHeadAttention", inputs, ["y", "", "", "qk"], num_heads=N, unidirectional=1)
    actual = run_onnxep(model, inputs)
    assert_close(actual, run_onnxruntime(model, inputs), 1e-5, 1e-4)
    assert actual[1][0, 0, 0, 2] == np.finfo(np.float32).min


def test_multi_head_attention_fully_masked_row_matches_onnxruntime():
    inputs = _mha_inputs(mask=_i32([[0, 0, 0], [1, 1, 0]]))
    _check("MultiHeadAttention", inputs, atol=MASKED_ROW_ATOL, num_heads=N)


def test_multi_head_attention_float16_matches_onnxruntime():
    inputs = _half(_mha_inputs(past=2, mask=_i32([4, 5])))
    _check(
        "MultiHeadAttention",
        inputs,
        ["y", "present_key", "present_value"],
        rtol=F16_TOL,
        atol=F16_TOL,
        num_heads=N,
    )


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"query": _rand(B, S, N, 3, 4)}, "packed QKV (no key input)"),
        ({"query": _rand(B, S, 8), "key": _rand(B, S, N, 2, 4)}, "packed KV (a 5-D key)"),
        (
            {**_mha_inputs(past=4), "past_sequence_length": _i32([2])},
            "past_sequence_length input",
        ),
        (
            {**_mha_inputs(past=4), "past_sequence_length": None, "cache_indirection": _i32([0])},
            "cache_indirection input (beam search)",
        ),
    ],
    ids=["packed_qkv", "packed_kv", "past_sequence_length", "cache_indirection"],
)
def test_multi_head_attention_declines_what_onnxruntime_cpu_refuses(inputs, reason):
    assert reason in _refusal("MultiHeadAttention", inputs, num_heads=N)


# --- EmbedLayerNormalization ----------------------------------------------------------------
EMBED_MASK = _i32([[1, 1, 0, 1], [1, 0, 0, 0]])


def _embed_inputs(
    *,
    segments: bool = True,
    mask: Any = EMBED_MASK,
    position_ids: Any = None,
    dtype: Any = np.float32,
) -> dict[str, Any]:
    """EmbedLayerNormalization's inputs in schema order: ids (B, 4) into tables of hidden 8."""
    rng = np.random.default_rng(0)
    hidden = 8
    return {
        "input_ids": rng.integers(0, 10, (B, 4)).astype(np.int32),
        "segment_ids": rng.integers(0, 2, (B, 4)).astype(np.int32) if segments else None,
        "word_embedding": _rand(10, hidden, seed=1).astype(dtype),
        "position_embedding": _rand(6, hidden, seed=2).astype(dtype),
        "segment_embedding": _rand(2, hidden, seed=3).astype(dtype) if segments else None,
        "gamma": _rand(hidden, seed=4).astype(dtype),
        "beta": _rand(hidden, seed=5).astype(dtype),
        "mask": mask,
        "position_ids": position_ids,
    }


EMBED_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "bert": ({}, {}),
    "no_segments": ({"segments": False}, {}),
    "no_mask": ({"mask": None}, {}),
    "mask_counts_ones": ({"mask": _i32([[1, 2, 0, 1], [1, -1, 0, 0]])}, {}),
    "position_ids": ({"position_ids": _i32([[3, 1, 0, 5], [2, 2, 2, 2]])}, {}),
    "position_ids_broadcast": ({"position_ids": _i32([[3, 1, 0, 5]])}, {}),
    "epsilon": ({}, {"epsilon": 1e-3}),
}


@pytest.mark.parametrize("case", sorted(EMBED_CASES))
def test_embed_layer_norm_matches_onnxruntime(case):
    build, attrs = EMBED_CASES[case]
    inputs = _embed_inputs(**build)
    weights = ("word_embedding", "position_embedding", "segment_embedding", "gamma", "beta")
    _check(
        "EmbedLayerNormalization",
        inputs,
        ["y", "mask_index", "embedding_sum"],
        constants=weights,
        **attrs,
    )


def test_embed_layer_norm_float16_matches_onnxruntime():
    inputs = _embed_inputs(dtype=np.float16)
    _check(
        "EmbedLayerNormalization",
        inputs,
        ["y", "mask_index", "embedding_sum"],
        rtol=F16_TOL,
        atol=F16_TOL,
    )


def test_embed_layer_norm_refuses_ids_outside_the_table():
    inputs = _embed_inputs()
    inputs["input_ids"][0, 0] = -1  # numpy would read the last row
    session = onnxep.InferenceSession(
        _model("EmbedLayerNormalization", inputs, ["y", "mask_index"]).SerializeToString(),
        providers=["reference"],
    )
    with pytest.raises(onnxep.errors.OnnxepError, match="input_ids out of range"):
        session.run(None, {k: v for k, v in inputs.items() if v is not None})


# --- SkipSimplifiedLayerNormalization, BiasAdd, BiasSplitGelu --------------------------------
@pytest.mark.parametrize(
    ("shape", "skip_shape", "bias"),
    [
        ((2, 3, 16), (2, 3, 16), True),
        ((2, 3, 16), (2, 3, 16), False),
        ((5, 16), (5, 16), True),
        ((2, 3, 16), (3, 16), False),
        ((2, 3, 16), (1, 3, 16), True),
    ],
    ids=["bias", "no_bias", "2d", "skip_2d", "skip_broadcast"],
)
def test_skip_simplified_layer_norm_matches_onnxruntime(shape, skip_shape, bias):
    inputs = {
        "input": _rand(*shape) + 2,
        "skip": _rand(*skip_shape, seed=1),
        "gamma": _rand(shape[-1], seed=2),
        "bias": _rand(shape[-1], seed=3) if bias else None,
    }
    outputs = ["y", "mean", "inv_std_var", "sum"]
    actual = _check("SkipSimplifiedLayerNormalization", inputs, outputs, epsilon=1e-5)
    assert not actual[1].any()  # onnxruntime writes a zero mean


def test_skip_simplified_layer_norm_float16_matches_onnxruntime():
    inputs = {
        "input": _rand(2, 3, 16).astype(np.float16),
        "skip": _rand(2, 3, 16, seed=1).astype(np.float16),
        "gamma": _rand(16, seed=2).astype(np.float16),
    }
    _check(
        "SkipSimplifiedLayerNormalization",
        inputs,
        ["y", "", "inv_std_var", "sum"],
        rtol=F16_TOL,
        atol=F16_TOL,
    )


def test_bias_add_and_bias_split_gelu_follow_their_schemas():
    """onnxruntime has these two on CUDA only: their schemas' formulas instead."""
    from math import erf

    x, bias, skip = _rand(2, 4, 8), _rand(8, seed=1), _rand(2, 4, 8, seed=2)
    (added,) = run_onnxep(
        _model("BiasAdd", {"x": x, "bias": bias, "skip": skip}),
        {"x": x, "bias": bias, "skip": skip},
    )
    np.testing.assert_allclose(added, x + bias + skip, rtol=1e-6)
    (gated,) = run_onnxep(_model("BiasSplitGelu", {"x": x, "bias": bias}), {"x": x, "bias": bias})
    total = (x + bias).astype(np.float64)
    right = total[..., 4:]
    expected = total[..., :4] * right * 0.5 * (1 + np.vectorize(erf)(right / np.sqrt(2)))
    np.testing.assert_allclose(gated, expected, rtol=1e-5, atol=1e-6)
    assert gated.shape == (2, 4, 4) and gated.dtype == np.float32


# --- RotaryEmbedding ------------------------------------------------------------------------
def _rotary_inputs(
    *,
    heads: int = 2,
    head_size: int = 8,
    rotary: int | None = None,
    four_d: bool = False,
    position_ids: Any = None,
    dtype: Any = np.float32,
    table: int = 10,
    seq: int = S,
) -> dict[str, Any]:
    half = (rotary or head_size) // 2
    x = _rand(B, seq, heads, head_size)
    return {
        "input": (x.transpose(0, 2, 1, 3) if four_d else x.reshape(B, seq, -1)).astype(dtype),
        "position_ids": np.array([2], np.int64) if position_ids is None else position_ids,
        "cos_cache": _rand(table, half, seed=1).astype(dtype),
        "sin_cache": _rand(table, half, seed=2).astype(dtype),
    }


ROTARY_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "offset": ({}, {}),
    "interleaved": ({}, {"interleaved": 1}),
    "position_ids": ({"position_ids": np.array([[1, 5, 2], [0, 9, 3]], np.int64)}, {}),
    "position_ids_interleaved": (
        {"position_ids": np.array([[1, 5, 2], [0, 9, 3]], np.int64)},
        {"interleaved": 1},
    ),
    "heads_4d": ({"four_d": True}, {}),
    "heads_4d_interleaved": ({"four_d": True}, {"interleaved": 1}),
    "partial": ({"rotary": 4}, {"rotary_embedding_dim": 4, "num_heads": 2}),
    "partial_interleaved": (
        {"rotary": 4},
        {"rotary_embedding_dim": 4, "num_heads": 2, "interleaved": 1},
    ),
    "partial_4d": ({"rotary": 4, "four_d": True}, {"rotary_embedding_dim": 4, "num_heads": 2}),
    "num_heads": ({}, {"num_heads": 2}),
    "odd_head_count": ({"heads": 3, "head_size": 6}, {}),
    "scale_unused": ({}, {"scale": 2.0}),
}


@pytest.mark.parametrize("case", sorted(ROTARY_CASES))
def test_rotary_embedding_matches_onnxruntime(case):
    build, attrs = ROTARY_CASES[case]
    _check(
        "RotaryEmbedding",
        _rotary_inputs(**build),
        constants=("cos_cache", "sin_cache"),
        atol=1e-5,
        **attrs,
    )


def test_rotary_embedding_float16_matches_onnxruntime():
    inputs = _rotary_inputs(dtype=np.float16, position_ids=np.array([[1, 5, 2], [0, 9, 3]]))
    _check("RotaryEmbedding", inputs, rtol=F16_TOL, atol=F16_TOL)


@pytest.mark.parametrize(
    ("build", "attrs", "message"),
    [
        ({"seq": 12}, {}, "exceeds the cos/sin cache"),
        ({"rotary": 8}, {"rotary_embedding_dim": 4, "num_heads": 2}, "rotary_embedding_dim 4"),
        ({"position_ids": np.array([[1, 5, 2], [0, 10, 3]])}, {}, "position ids out of range"),
    ],
    ids=["longer_than_cache", "cache_wider_than_rotary", "position_outside_cache"],
)
def test_rotary_embedding_refuses_what_it_cannot_match(build, attrs, message):
    """onnxruntime refuses the first and reads a wider cache at the rotary dim's stride."""
    inputs = _rotary_inputs(**build)
    model = _model("RotaryEmbedding", inputs, **attrs)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    with pytest.raises(onnxep.errors.OnnxepError, match=message):
        session.run(None, inputs)


# --- MatMulNBits ----------------------------------------------------------------------------
def _pack(values: np.ndarray, bits: int) -> np.ndarray:
    """``bits``-bit values packed along the last axis into uint8, low bits first (padded)."""
    per = 8 // bits
    pad = -values.shape[-1] % per
    padded = np.concatenate([values, np.zeros((*values.shape[:-1], pad), values.dtype)], -1)
    groups = padded.reshape(*values.shape[:-1], -1, per).astype(np.uint8)
    return np.bitwise_or.reduce(groups << (np.arange(per, dtype=np.uint8) * bits), axis=-1)


def _nbits_inputs(
    *,
    k: int,
    n: int = 5,
    block: int = 16,
    bits: int = 4,
    zero_points: str = "packed",
    bias: bool = False,
    dtype: Any = np.float32,
    a_shape: tuple[int, ...] = (3,),
) -> dict[str, Any]:
    rng = np.random.default_rng(k + block + bits)
    blocks = -(-k // block)
    quantized = rng.integers(0, 2**bits, (n, blocks, block)).astype(np.uint8)
    points: np.ndarray | None = None
    if zero_points == "packed":
        points = _pack(rng.integers(0, 2**bits, (n, blocks)).astype(np.uint8), bits)
    elif zero_points == "float":
        points = rng.integers(0, 2**bits, (n, blocks)).astype(dtype)
    return {
        "A": _rand(*a_shape, k).astype(dtype),
        "B": _pack(quantized, bits),
        "scales": rng.uniform(0.01, 0.1, (n, blocks)).astype(dtype),
        "zero_points": points,
        "g_idx": None,
        "bias": _rand(n, seed=3).astype(dtype) if bias else None,
    }


NBITS_CASES: dict[str, dict[str, Any]] = {
    "4bit_block16_k_not_multiple": {"k": 40},
    "4bit_no_zero_points": {"k": 40, "zero_points": "none"},
    "4bit_float_zero_points": {"k": 40, "zero_points": "float"},
    "4bit_block32": {"k": 72, "block": 32},
    "4bit_block32_multiple": {"k": 64, "block": 32, "zero_points": "none"},
    "4bit_block128": {"k": 200, "block": 128},
    "4bit_block128_one_partial_block": {"k": 100, "block": 128, "zero_points": "none"},
    "4bit_odd_block_count": {"k": 48, "block": 16},
    "4bit_bias_3d_input": {"k": 40, "bias": True, "a_shape": (2, 3)},
    "8bit": {"k": 40, "bits": 8},
    "8bit_no_zero_points": {"k": 72, "block": 32, "bits": 8, "zero_points": "none"},
    "2bit": {"k": 40, "bits": 2},
}


@pytest.mark.parametrize("case", sorted(NBITS_CASES))
@pytest.mark.parametrize("constant", [True, False], ids=["constant", "fed"])
def test_matmul_nbits_matches_onnxruntime(case, constant):
    params = NBITS_CASES[case]
    inputs = _nbits_inputs(**params)
    weights = ("B", "scales", "zero_points", "bias") if constant else ()
    _check(
        "MatMulNBits",
        inputs,
        constants=weights,
        K=params["k"],
        N=5,
        bits=params.get("bits", 4),
        block_size=params.get("block", 16),
    )


def test_matmul_nbits_float16_matches_onnxruntime():
    inputs = _nbits_inputs(k=40, dtype=np.float16, bias=True)
    _check(
        "MatMulNBits",
        inputs,
        constants=("B", "scales", "zero_points", "bias"),
        rtol=F16_TOL,
        atol=F16_TOL,
        K=40,
        N=5,
        block_size=16,
    )


def test_matmul_nbits_dequantizes_constant_weights_once(monkeypatch):
    calls = []
    original = attention_ops._nbits_weights

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention_ops, "_nbits_weights", counting)
    inputs = _nbits_inputs(k=40)
    model = _model(
        "MatMulNBits", inputs, constants=("B", "scales", "zero_points"), K=40, N=5, block_size=16
    )
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    for _ in range(3):
        session.run(None, {"A": inputs["A"]})
    assert len(calls) == 1


def test_matmul_nbits_declines_g_idx():
    inputs = {**_nbits_inputs(k=32), "g_idx": np.arange(32, dtype=np.int32) // 16}
    message = _refusal("MatMulNBits", inputs, K=32, N=5, block_size=16)
    assert "g_idx (act-order quantisation, deprecated) is not implemented" in message


def test_matmul_nbits_quantizer_output_matches_onnxruntime(tmp_path):
    """A MatMul quantised by onnxruntime's own MatMulNBitsQuantizer (4-bit, symmetric and
    not), then run on both."""
    quantization = pytest.importorskip("onnxruntime.quantization.matmul_nbits_quantizer")
    weights = _rand(80, 24, seed=7)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["b", 80])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 24])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"a": _rand(3, 80, seed=8)}
    for symmetric in (True, False):
        quantizer = quantization.MatMulNBitsQuantizer(
            onnx.ModelProto.FromString(model.SerializeToString()),
            block_size=32,
            is_symmetric=symmetric,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantizer.process()
        quantized = quantizer.model.model
        assert [n.op_type for n in quantized.graph.node] == ["MatMulNBits"]
        actual = run_onnxep(quantized, feeds)
        assert_close(actual, run_onnxruntime(quantized, feeds), 1e-5, 1e-4)
        exact = feeds["a"] @ weights  # and near the float product, to 4-bit precision
        assert np.linalg.norm(actual[0] - exact) < 0.2 * np.linalg.norm(exact)


# --- output types for shape inference -------------------------------------------------------
def _untyped(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its outputs' types erased, as a node inside a graph would have them."""
    for output in model.graph.output:
        output.type.tensor_type.elem_type = TensorProto.UNDEFINED
    return model


def test_new_contrib_ops_outputs_are_typed():
    inputs = _attention_inputs(past=2)
    model = _untyped(
        _model("Attention", inputs, ["y", "present"], constants=("w", "b"), num_heads=N)
    )
    assert annotate_contrib_outputs(model.graph)
    types = {v.name: v.type.tensor_type for v in model.graph.value_info}
    assert types["y"].elem_type == TensorProto.FLOAT and len(types["y"].shape.dim) == 3
    assert len(types["present"].shape.dim) == 5
    embed = _untyped(_model("EmbedLayerNormalization", _embed_inputs(), ["y", "mask_index", "sum"]))
    assert annotate_contrib_outputs(embed.graph)
    types = {v.name: v.type.tensor_type for v in embed.graph.value_info}
    assert types["mask_index"].elem_type == TensorProto.INT32
    assert types["sum"].elem_type == TensorProto.FLOAT and len(types["sum"].shape.dim) == 3


# --- end to end: a tiny BERT through onnxruntime's transformers optimiser --------------------
def _bert(layers: int = 2, hidden: int = 16, heads: int = 2, vocab: int = 30) -> onnx.ModelProto:
    """A BERT in the ops and patterns transformers' torch export writes: word, position and
    token-type embeddings (positions sliced from a constant by the input's length), an
    additive mask from a 0/1 attention_mask, post-LayerNorm layers with erf GELU."""
    rng = np.random.default_rng(0)
    head = hidden // heads
    inits: dict[str, np.ndarray] = {}
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: Any) -> str:
        inits[name] = np.asarray(value)
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def weight(name: str, *shape: int, scale: float = 0.1, offset: float = 0.0) -> str:
        return const(name, (offset + scale * rng.standard_normal(shape)).astype(np.float32))

    def linear(x: str, n_in: int, n_out: int, name: str) -> str:
        mm = op("MatMul", [x, weight(f"{name}.w", n_in, n_out)], f"{name}.mm")
        return op("Add", [weight(f"{name}.b", n_out), mm], name)

    def layer_norm(x: str, name: str) -> str:
        gamma, beta = weight(f"{name}.g", hidden, offset=1.0), weight(f"{name}.b", hidden)
        return op("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=1e-12)

    # embeddings
    words = op("Gather", [weight("word_emb", vocab, hidden), "input_ids"], "emb.words")
    types = op("Gather", [weight("type_emb", 2, hidden), "token_type_ids"], "emb.types")
    summed = op("Add", [words, types], "emb.sum")
    shape = op("Shape", ["input_ids"], "emb.shape")
    length = op("Gather", [shape, const("one_i", np.array(1))], "emb.len")
    end = op("Unsqueeze", [length, const("axes0", np.array([0]))], "emb.end")
    table, zero, one = np.arange(16)[None, :], np.array([0]), np.array([1])
    slice_inputs = [const("position_ids", table), const("zero_1", zero), end]
    slice_inputs += [const("axes1", one), const("step1", one)]
    ids = op("Slice", slice_inputs, "emb.pos_ids")
    positions = op("Gather", [weight("pos_emb", 16, hidden), ids], "emb.positions")
    x = layer_norm(op("Add", [summed, positions], "emb.all"), "emb.ln")
    # extended attention mask: (1 - mask[:, None, None, :]) * -10000
    unsq = op("Unsqueeze", ["attention_mask", const("ax1", np.array([1]))], "mask.u1")
    unsq = op("Unsqueeze", [unsq, const("ax2", np.array([2]))], "mask.u2")
    cast = op("Cast", [unsq], "mask.f", to=TensorProto.FLOAT)
    inverted = op("Sub", [const("one_f", np.array(1.0, np.float32)), cast], "mask.inv")
    mask = op("Mul", [inverted, const("neg", np.array(-10000.0, np.float32))], "mask.add")
    split = const("split_shape", np.array([0, 0, heads, head]))
    merge = const("merge_shape", np.array([0, 0, hidden]))
    for i in range(layers):
        p = f"l{i}"
        parts = {}
        for part, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            reshaped = op(
                "Reshape", [linear(x, hidden, hidden, f"{p}.{part}"), split], f"{p}.{part}.r"
            )
            parts[part] = op("Transpose", [reshaped], f"{p}.{part}.t", perm=perm)
        scores = op("MatMul", [parts["q"], parts["k"]], f"{p}.scores")
        scaled = op(
            "Div", [scores, const(f"{p}.sqrt", np.array(np.sqrt(head), np.float32))], f"{p}.scaled"
        )
        probs = op("Softmax", [op("Add", [scaled, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
        context = op(
            "Transpose",
            [op("MatMul", [probs, parts["v"]], f"{p}.ctx")],
            f"{p}.ctx.t",
            perm=[0, 2, 1, 3],
        )
        merged = op("Reshape", [context, merge], f"{p}.ctx.r")
        attn = linear(merged, hidden, hidden, f"{p}.o")
        x = layer_norm(op("Add", [attn, x], f"{p}.res1"), f"{p}.ln1")
        up = linear(x, hidden, 4 * hidden, f"{p}.up")
        scaled_up = op("Div", [up, const("sqrt2", np.array(np.sqrt(2), np.float32))], f"{p}.g1")
        erf = op("Erf", [scaled_up], f"{p}.g2")
        one_plus = op("Add", [erf, const("one_g", np.array(1.0, np.float32))], f"{p}.g3")
        gated = op("Mul", [up, one_plus], f"{p}.g4")
        gelu = op("Mul", [gated, const("half", np.array(0.5, np.float32))], f"{p}.gelu")
        down = linear(gelu, 4 * hidden, hidden, f"{p}.down")
        x = layer_norm(op("Add", [down, x], f"{p}.res2"), f"{p}.ln2")
    int64 = TensorProto.INT64
    graph = helper.make_graph(
        nodes,
        "tiny_bert",
        [
            helper.make_tensor_value_info(n, int64, ["batch", "seq"])
            for n in ("input_ids", "token_type_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "seq", hidden])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch"
    )
    model.ir_version = 8
    return model


@pytest.mark.parametrize("providers", [None, ["reference"]], ids=["default", "reference"])
def test_transformers_optimizer_bert_matches_onnxruntime(tmp_path, providers):
    pytest.importorskip("sympy", reason="onnxruntime's transformers optimiser needs sympy")
    from onnxruntime.transformers.optimizer import optimize_model

    source, target = tmp_path / "bert.onnx", tmp_path / "bert_fused.onnx"
    onnx.save(_bert(), source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = optimize_model(
            str(source), model_type="bert", num_heads=2, hidden_size=16, opt_level=0
        )
        optimizer.save_model_to_file(str(target))  # which adds the com.microsoft opset import
    optimized = onnx.load(target)
    fused = {n.op_type for n in optimized.graph.node if n.domain == MS}
    wanted = {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"}
    if not wanted <= fused:
        pytest.skip(f"this onnxruntime's optimiser fused only {sorted(fused)} of {sorted(wanted)}")
    rng = np.random.default_rng(1)
    mask = np.ones((2, 7), np.int64)
    mask[1, 4:] = 0  # right padding, which the fused mask_index (a length) describes
    feeds = {
        "input_ids": rng.integers(0, 30, (2, 7)),
        "token_type_ids": (np.arange(7)[None, :] >= 3).repeat(2, 0).astype(np.int64),
        "attention_mask": mask,
    }
    expected = run_onnxruntime(optimized, feeds)
    session = onnxep.InferenceSession(optimized.SerializeToString(), providers=providers)
    actual = session.run(None, feeds)
    assert_close(actual, expected, 1e-4, 1e-4)
    reference = run_onnxruntime(_bert(), feeds)  # and the fusion kept the model's meaning
    np.testing.assert_allclose(actual[0][0], reference[0][0], rtol=1e-3, atol=1e-3)
