"""com.microsoft.GroupQueryAttention on the hand-written kernel, against onnxruntime's CPU one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import onnxep

from .helpers import assert_close, run_onnxep, run_onnxruntime
from .test_attention_ops import _model

pytest.importorskip("onnxruntime", reason="GroupQueryAttention is compared with onnxruntime")

OUTPUTS = ("y", "present_key", "present_value")
TOL = 1e-4
F16_TOL = 3e-3


def _inputs(
    *,
    batch: int = 2,
    seq: int = 4,
    past: int = 0,
    heads: int = 4,
    kv_heads: int = 2,
    size: int = 8,
    seqlens: list[int] | None = None,
    total: int | None = None,
    packed: bool = False,
    rotary: int = 0,
    dtype: Any = np.float32,
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """GQA inputs; ``rotary`` > 0: cos/sin caches of that many columns (16 rows)."""
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return rng.uniform(-1, 1, shape).astype(dtype)

    total = seq + past if total is None else total
    inputs: dict[str, Any] = {"query": rand(batch, seq, (heads + 2 * kv_heads) * size)}
    inputs.update(key=None, value=None)
    if not packed:
        inputs["query"] = rand(batch, seq, heads * size)
        kv_width = kv_heads * size
        inputs.update(key=rand(batch, seq, kv_width), value=rand(batch, seq, kv_width))
    inputs["past_key"] = rand(batch, kv_heads, past, size) if past else None
    inputs["past_value"] = rand(batch, kv_heads, past, size) if past else None
    lengths = seqlens if seqlens is not None else [total - 1] * batch
    inputs["seqlens_k"] = np.array(lengths, np.int32)
    inputs["total_sequence_length"] = np.array(total, np.int32)
    inputs["cos_cache"] = inputs["sin_cache"] = None
    if rotary:
        angles = rng.uniform(0, 3, (16, rotary))
        inputs["cos_cache"] = np.cos(angles).astype(dtype)
        inputs["sin_cache"] = np.sin(angles).astype(dtype)
    inputs.update(extra)
    return inputs


def _check(inputs: dict[str, Any], tol: float = TOL, **attrs: Any) -> list[Any]:
    attrs = {"num_heads": 4, "kv_num_heads": 2, **attrs}
    model = _model("GroupQueryAttention", inputs, OUTPUTS, **attrs)
    actual = run_onnxep(model, inputs)
    assert_close(actual, run_onnxruntime(model, inputs), tol, tol)
    return actual


CASES = {
    "prompt": (dict(), {}),
    "prompt_right_padding": (dict(seqlens=[3, 1], total=4), {}),
    "generation": (dict(seq=1, past=5, seqlens=[5, 5], total=6), {}),
    "generation_ragged_buffer": (dict(seq=1, past=8, seqlens=[5, 3], total=6), {}),
    "generation_grows_buffer": (dict(seq=1, past=5, seqlens=[5, 3], total=6), {}),
    "subsequent_prompt": (dict(batch=1, seq=3, past=4, seqlens=[6], total=7), {}),
    "equal_heads": (dict(heads=3, kv_heads=3), {"num_heads": 3, "kv_num_heads": 3}),
    "eight_per_group": (dict(heads=8, kv_heads=1), {"num_heads": 8, "kv_num_heads": 1}),
    "packed": (dict(packed=True, seqlens=[3, 2], total=4), {}),
    "packed_generation": (dict(packed=True, seq=1, past=4, seqlens=[4, 2], total=5), {}),
    "rotary": (dict(size=16, rotary=8, seqlens=[3, 2], total=4), {"do_rotary": 1}),
    "rotary_interleaved": (
        dict(size=16, rotary=8, seqlens=[3, 2], total=4),
        {"do_rotary": 1, "rotary_interleaved": 1},
    ),
    "rotary_generation": (dict(size=16, rotary=8, seq=1, past=6, seqlens=[6, 3]), {"do_rotary": 1}),
    "rotary_interleaved_generation": (
        dict(size=16, rotary=8, seq=1, past=6, seqlens=[6, 3]),
        {"do_rotary": 1, "rotary_interleaved": 1},
    ),
    "rotary_partial": (dict(size=32, rotary=8, seqlens=[3, 2], total=4), {"do_rotary": 1}),
    "rotary_packed_generation": (
        dict(size=16, rotary=8, seq=1, past=6, seqlens=[6, 3], packed=True),
        {"do_rotary": 1},
    ),
    "rotary_position_ids_prompt": (  # a first prompt reads only position_ids[0, 0]
        dict(size=16, rotary=8, position_ids=np.array([[3, 9, 5, 6], [0, 1, 2, 3]])),
        {"do_rotary": 1},
    ),
    "rotary_position_ids_generation": (
        dict(size=16, rotary=8, seq=1, past=5, seqlens=[5, 3], position_ids=np.array([[2], [9]])),
        {"do_rotary": 1},
    ),
    "local_window": (dict(seq=6, seqlens=[5, 3], total=6), {"local_window_size": 2}),
    "local_window_padded": (dict(seq=6, seqlens=[5, 1], total=6), {"local_window_size": 2}),
    "local_window_generation": (
        dict(seq=1, past=7, seqlens=[7, 5], total=8),
        {"local_window_size": 3},
    ),
    "softcap": (dict(seqlens=[3, 2], total=4), {"softcap": 0.5}),
    "scale": (dict(seqlens=[3, 2], total=4), {"scale": 0.3}),
    "smooth_softmax": (dict(seqlens=[3, 2], total=4), {"smooth_softmax": 1}),
    "smooth_softmax_off": (dict(seqlens=[3, 2], total=4), {"smooth_softmax": 0}),
    "head_sink": (
        dict(
            seqlens=[3, 2],
            total=4,
            position_ids=None,
            attention_bias=None,
            head_sink=np.array([0.5, -1, 2, 0.1], np.float32),
        ),
        {},
    ),
    "not_causal": (dict(seqlens=[3, 2], total=4), {"causal": 0}),
    "not_causal_generation": (dict(seq=1, past=4, seqlens=[4, 2], total=5), {"causal": 0}),
    "attention_bias": (
        dict(
            seqlens=[3, 2],
            total=4,
            position_ids=None,
            attention_bias=np.random.default_rng(1).uniform(-1, 1, (2, 4, 4, 4)).astype("f4"),
        ),
        {},
    ),
    "attention_bias_after_softcap": (
        dict(
            seqlens=[3, 2],
            total=4,
            position_ids=None,
            attention_bias=np.random.default_rng(1).uniform(-1, 1, (1, 1, 4, 4)).astype("f4"),
        ),
        {"softcap": 0.5},
    ),
    "attention_bias_generation": (
        dict(
            seq=1,
            past=5,
            seqlens=[5, 3],
            total=6,
            position_ids=None,
            attention_bias=np.random.default_rng(1).uniform(-1, 1, (2, 1, 1, 6)).astype("f4"),
        ),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_group_query_attention_matches_onnxruntime(case: str) -> None:
    shape, attrs = CASES[case]
    _check(_inputs(**shape), **attrs)


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        (dict(seqlens=[3, 2], total=4), {}),
        (dict(seq=1, past=5, size=16, rotary=8, seqlens=[5, 3], total=6), {"do_rotary": 1}),
        (
            dict(packed=True, seq=1, past=7, seqlens=[7, 5], total=8),
            {"local_window_size": 3, "softcap": 1.0},
        ),
    ],
)
def test_group_query_attention_float16_matches_onnxruntime(shape: dict, attrs: dict) -> None:
    _check(_inputs(dtype=np.float16, **shape), F16_TOL, **attrs)


@pytest.mark.parametrize("rotary", [False, True])
def test_group_query_attention_decode_loop(rotary: bool) -> None:
    """A prompt, then two generated tokens, each step's present fed back as the next past."""
    size = 16 if rotary else 8
    attrs = {"do_rotary": 1} if rotary else {}
    prompt = _inputs(size=size, rotary=8 if rotary else 0, seqlens=[3, 1], total=4)
    _, present_k, present_v = _check(prompt, **attrs)
    lengths = np.array([3, 1])
    for step in range(2):
        lengths = lengths + 1
        total = int(lengths.max()) + 1
        step_inputs = _inputs(size=size, rotary=0, seq=1, seed=10 + step, seqlens=list(lengths))
        step_inputs.update(
            past_key=present_k,
            past_value=present_v,
            total_sequence_length=np.array(total, np.int32),
            cos_cache=prompt["cos_cache"],
            sin_cache=prompt["sin_cache"],
        )
        _, present_k, present_v = _check(step_inputs, **attrs)
        assert present_k.shape[2] == max(4 + step, total)


def _refusal(inputs: dict[str, Any], outputs: tuple[str, ...] = OUTPUTS, **attrs: Any) -> str:
    model = _model("GroupQueryAttention", inputs, outputs, num_heads=4, kv_num_heads=2, **attrs)
    with pytest.raises(onnxep.errors.NotImplemented) as err:
        onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    return str(err.value)


def _norm_weights() -> dict[str, Any]:
    weight = np.ones(8, np.float32)
    return dict(
        position_ids=None,
        attention_bias=None,
        head_sink=None,
        k_scale=None,
        v_scale=None,
        q_norm_weight=weight,
        k_norm_weight=weight,
    )


@pytest.mark.parametrize(
    ("extra", "attrs", "outputs", "reason"),
    [
        ({}, {"qk_output": 1}, OUTPUTS, "qk_output"),
        ({}, {}, (*OUTPUTS, "qk"), "output_qk"),
        ({}, {"sliding_window_cache": 1}, OUTPUTS, "sliding_window_cache"),
        ({}, {"k_quant_type": "PER_TENSOR"}, OUTPUTS, "k_quant_type"),
        ({}, {"kv_cache_bit_width": 8}, OUTPUTS, "kv_cache_bit_width"),
        (_norm_weights(), {}, OUTPUTS, "q_norm_weight"),
    ],
)
def test_group_query_attention_declines(extra, attrs, outputs, reason) -> None:
    assert reason in _refusal(_inputs(**extra), outputs, **attrs)
