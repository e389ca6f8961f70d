"""onnxruntime's transformer contrib ops (domain ``com.microsoft``), as its transformers
optimiser and quantisation tools write them.

``python -m onnxruntime.transformers.optimizer`` (and HF Optimum's ORTOptimizer) fuse a
BERT/GPT-2/T5 graph into Attention, MultiHeadAttention, EmbedLayerNormalization,
SkipSimplifiedLayerNormalization (RMSNorm) and RotaryEmbedding; diffusion UNets get BiasAdd
and BiasSplitGelu; ``MatMulNBitsQuantizer`` writes MatMulNBits (block-quantised weights).

The semantics are those of onnxruntime's CPU kernels (``contrib_ops/cpu/bert``,
``contrib_ops/cpu/quantization``), checked against onnxruntime 1.31, including what the
schema does not say:

- attention scores are ``scale * Q K' + attention_bias + mask``; a key the padding mask hides
  gets ``mask_filter_value`` (-10000), so a fully masked row is a softmax over the raw scores
  shifted by it (nearly uniform), not zeros; a key the causal mask hides gets float32's lowest
  value. The causal mask hides key ``j`` from query row ``s`` when ``j > past + s``, for every
  row but the last (onnxruntime leaves the last row whole, which matters only when the key
  sequence is longer than the query's);
- a 1-D mask of ``batch`` entries holds each row's end (right padding), of ``2 * batch`` also
  the starts (left padding), of ``3 * batch + 2`` is read by its first ``batch`` entries; a
  2-D mask ``(batch, 1)`` of Attention is no mask; mask values > 0 keep a key;
- EmbedLayerNormalization's ``mask_index`` counts the 1s of each mask row (0 without a mask).

Forms onnxruntime's CPU kernels refuse are declined too (named in each op's docstring).
Float16 inputs are computed in float32 and the outputs cast back, as onnxruntime does for
these ops; bfloat16 is declined (numpy has no such type). onnx has no schema for this
domain, so these kernels return tuples (see :func:`onnxep.registry.is_multi_output`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import all_checks, attr_in, factory, input_dtypes
from onnxep.reference._registry import kernels
from onnxep.reference.contrib_ops import gelu

__all__: list[str] = []

MS = "com.microsoft"
_FLOATS = ("float16", "float32")
#: What onnxruntime writes for the scores a causal mask hides (its qk output shows it; not -inf).
_HIDDEN = np.finfo(np.float32).min
_FLOAT_INPUT = input_dtypes(i0=_FLOATS)
_ORT_TOO = "(onnxruntime's CPU kernel refuses it too)"


# --- shared pieces ------------------------------------------------------------------------
def _wide(x: Any) -> np.ndarray:
    """``x`` as a float32 array (float16 widened; float32 as is)."""
    return np.asarray(x).astype(np.float32, copy=False)


def _given(info: NodeInfo, i: int) -> bool:
    """Whether the node lists input ``i``."""
    return i < info.n_inputs and bool(info.node.inputs[i])


def _refuse_inputs(names: dict[int, str]) -> Callable[[NodeInfo], str | None]:
    """A check declining nodes that give any of ``names`` (input position -> why)."""

    def check(info: NodeInfo) -> str | None:
        for i, why in names.items():
            if _given(info, i):
                return why
        return None

    return check


def _refuse_attrs(names: dict[str, str]) -> Callable[[NodeInfo], str | None]:
    """A check declining nodes that set any of ``names`` (attribute -> why) to non-zero."""

    def check(info: NodeInfo) -> str | None:
        for name, why in names.items():
            if info.attrs.get(name, 0):
                return why
        return None

    return check


def _refuse_rank(i: int, ranks: Sequence[int], why: str) -> Callable[[NodeInfo], str | None]:
    """A check declining nodes whose input ``i`` has a rank in ``ranks`` (when known)."""

    def check(info: NodeInfo) -> str | None:
        shape = info.input_shape(i) if _given(info, i) else None
        return why if shape is not None and len(shape) in ranks else None

    return check


# --- attention core -----------------------------------------------------------------------
def _split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(batch, seq, heads * size) -> (batch, heads, seq, size)."""
    batch, seq, hidden = x.shape
    if hidden % num_heads:
        raise ValueError(f"hidden size {hidden} is not divisible by num_heads={num_heads}")
    return x.reshape(batch, seq, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """(batch, heads, seq, size) -> (batch, seq, heads * size)."""
    batch, heads, seq, size = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * size)


def _kept_keys(
    mask: np.ndarray, batch: int, seq: int, total: int, *, attention: bool
) -> np.ndarray | None:
    """Which keys each query row may see, (batch, 1 or seq, total) bool, from a padding
    mask in one of onnxruntime's forms (None: the mask hides nothing). ``attention`` allows
    Attention's extra forms: (2 * batch,) ends then starts, and the dummy (batch or 1, 1)."""
    keys = np.arange(total)
    if mask.ndim == 1:
        lengths = (batch, 3 * batch + 2, *((2 * batch,) if attention else ()))
        if mask.shape[0] not in lengths:
            raise ValueError(f"a 1-D mask has {mask.shape[0]} entries; takes {sorted(lengths)}")
        kept = keys < np.clip(mask[:batch], 0, total)[:, None]
        if attention and mask.shape[0] == 2 * batch:  # the start of each row (left padding)
            kept &= keys >= np.clip(mask[batch:], 0, total)[:, None]
        return kept[:, None, :]
    if mask.ndim == 2 and mask.shape == (batch, total):
        return (mask > 0)[:, None, :]
    if attention and mask.ndim == 2 and mask.shape[1] == 1 and mask.shape[0] in (1, batch):
        return None  # a broadcast mask: the same on every key, so no mask
    if mask.ndim == 3 and mask.shape == (batch, seq, total):
        return mask > 0
    raise ValueError(
        f"mask of shape {mask.shape} is not (batch,), (batch, total_sequence) or (batch, "
        f"sequence, total_sequence) with batch={batch}, sequence={seq}, total_sequence={total}"
    )


def _causally_hidden(seq: int, total: int, past: int) -> np.ndarray:
    """(seq, total) bool: the keys onnxruntime's causal mask hides (every row but the last)."""
    rows = np.arange(seq)[:, None]
    return (np.arange(total)[None, :] > past + rows) & (rows < seq - 1)


def _additive_mask(
    mask: Any,
    *,
    batch: int,
    seq: int,
    total: int,
    past: int,
    causal: bool,
    fill: float,
    attention: bool,
) -> np.ndarray | None:
    """The (batch, 1, 1 or seq, total) float32 mask added to the scores, or None."""
    kept = None
    if mask is not None:
        kept = _kept_keys(np.asarray(mask), batch, seq, total, attention=attention)
    if kept is None and not causal:
        return None
    additive = np.zeros((batch, 1, total), np.float32)
    if kept is not None:
        additive = np.where(kept, np.float32(0), np.float32(fill))
    if causal:
        additive = np.where(_causally_hidden(seq, total, past), _HIDDEN, additive)
    return additive[:, None]


def _attend(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, additive: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(scale * q k' + additive) v over (batch, heads, seq, size) float32 arrays; the
    output and the scores before the softmax."""
    scale = scale or 1.0 / np.sqrt(np.float32(q.shape[-1]))
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    scores *= np.float32(scale)
    if additive is not None:
        scores += additive
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.matmul(probs, v), scores


def _bias_and_mask(attention_bias: Any, mask: np.ndarray | None) -> np.ndarray | None:
    """attention_bias + mask (onnxruntime adds them before the scaled scores), or either."""
    if attention_bias is None:
        return mask
    bias = _wide(attention_bias)
    return bias if mask is None else bias + mask


def _attend_after_past(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, past: Any, mask_input: Any,
    attention_bias: Any, *, causal: bool, fill: float, scale: Any, attention: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Past keys and values (a pair, or None) prepended to the new ones, the mask (in
    Attention's or MultiHeadAttention's forms) and bias added: (out, qk, keys, values)."""
    past_len = 0
    if past is not None:
        past_len = past[0].shape[2]
        k, v = np.concatenate([past[0], k], axis=2), np.concatenate([past[1], v], axis=2)
    mask = _additive_mask(
        mask_input,
        batch=q.shape[0],
        seq=q.shape[2],
        total=k.shape[2],
        past=past_len,
        causal=causal,
        fill=fill,
        attention=attention,
    )
    out, qk = _attend(q, k, v, scale, _bias_and_mask(attention_bias, mask))
    return out, qk, k, v


# --- Attention ------------------------------------------------------------------------------
_ATTENTION_CHECK = all_checks(
    _FLOAT_INPUT,
    _refuse_attrs(
        {
            "do_rotary": f"do_rotary=1 is not implemented {_ORT_TOO}: fuse the model as "
            "MultiHeadAttention + RotaryEmbedding",
            "past_present_share_buffer": "past_present_share_buffer=1 (a fixed-size KV cache "
            "written in place) is not implemented",
        }
    ),
    _refuse_inputs({6: "the past_sequence_length input (a shared KV buffer) is not implemented"}),
    _refuse_rank(3, (4,), f"a 4-D (Megatron) mask_index is not implemented {_ORT_TOO}"),
)


def _qkv_sizes(width: int, qkv_hidden_sizes: Sequence[int]) -> tuple[int, int, int]:
    """The Q, K and V widths of the packed projection."""
    if not qkv_hidden_sizes:
        if width % 3:
            raise ValueError(f"packed QKV width {width} is not divisible by 3")
        return width // 3, width // 3, width // 3
    q, k, v = qkv_hidden_sizes
    if q != k or q + k + v != width:
        raise ValueError(f"qkv_hidden_sizes {list(qkv_hidden_sizes)} do not fit width {width}")
    return q, k, v


@kernels.register("Attention", versions=(1,), domain=MS, check=_ATTENTION_CHECK)
def attention(
    input: Any,
    weights: Any,
    bias: Any = None,
    mask_index: Any = None,
    past: Any = None,
    attention_bias: Any = None,
    past_sequence_length: Any = None,
    *,
    num_heads: int,
    qkv_hidden_sizes: Sequence[int] = (),
    unidirectional: int = 0,
    scale: float = 0.0,
    mask_filter_value: float = -10000.0,
    do_rotary: int = 0,
    past_present_share_buffer: int = 0,
    rotary_embedding_dim: int = 0,
) -> tuple[Any, Any]:
    """Self-attention with the Q, K, V projections packed in ``weights`` (input_hidden,
    D + D + D_v) and ``bias``; ``past`` (2, batch, heads, past_seq, head_size) is prepended to
    K and V, and ``present`` is the result. Outputs: (batch, seq, D_v) and ``present``.

    ``mask_index``: 1-D (batch,) ends, (2 * batch,) ends and starts, (3 * batch + 2,) read by
    its first batch entries, 2-D (batch, total_seq) 0/1, 3-D (batch, seq, total_seq) 0/1.
    Declined: ``do_rotary``, ``past_present_share_buffer`` and a 4-D mask, which the CPU
    kernel refuses, and bfloat16. A missing ``bias`` is zero (onnxruntime's CPU kernel
    crashes without one); ``attention_bias`` with ``past``, which it refuses, is added.
    """
    x = np.asarray(input)
    dtype = x.dtype
    q_size, k_size, _ = _qkv_sizes(np.shape(weights)[1], qkv_hidden_sizes)
    projected = np.matmul(_wide(x), _wide(weights))
    if bias is not None:
        projected += _wide(bias)
    q = _split_heads(projected[..., :q_size], num_heads)
    k = _split_heads(projected[..., q_size : q_size + k_size], num_heads)
    v = _split_heads(projected[..., q_size + k_size :], num_heads)
    cache = None if past is None else _wide(past)
    out, _, k, v = _attend_after_past(
        q, k, v, cache, mask_index, attention_bias,
        causal=bool(unidirectional), fill=mask_filter_value, scale=scale, attention=True,
    )  # fmt: skip
    present = np.stack([k, v]).astype(dtype, copy=False) if k.shape == v.shape else None
    return _merge_heads(out).astype(dtype, copy=False), present


# --- MultiHeadAttention ---------------------------------------------------------------------
_PACKED_QKV = f"packed QKV (no key input) is not implemented {_ORT_TOO}"
_MHA_CHECK = all_checks(
    _FLOAT_INPUT,
    _refuse_inputs(
        {
            8: "the past_sequence_length input (a shared KV buffer) is not implemented",
            9: "the cache_indirection input (beam search) is not implemented",
        }
    ),
    lambda info: None if _given(info, 1) else _PACKED_QKV,
    _refuse_rank(1, (5,), f"packed KV (a 5-D key) is not implemented {_ORT_TOO}"),
)


def _projected(x: np.ndarray, bias: np.ndarray | None, num_heads: int) -> np.ndarray:
    """A (batch, seq, hidden) input plus its slice of the bias, split into heads; a 4-D
    (batch, heads, seq, size) one as is (onnxruntime adds no bias to it)."""
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise ValueError(f"key and value must be 3-D or 4-D, got {x.ndim}-D")
    return _split_heads(x + bias if bias is not None else x, num_heads)


@kernels.register("MultiHeadAttention", versions=(1,), domain=MS, check=_MHA_CHECK)
def multi_head_attention(
    query: Any,
    key: Any = None,
    value: Any = None,
    bias: Any = None,
    key_padding_mask: Any = None,
    attention_bias: Any = None,
    past_key: Any = None,
    past_value: Any = None,
    past_sequence_length: Any = None,
    cache_indirection: Any = None,
    *,
    num_heads: int,
    unidirectional: int = 0,
    scale: float = 0.0,
    mask_filter_value: float = -10000.0,
) -> tuple[Any, Any, Any, Any]:
    """Attention of separate Q (batch, seq, D), K and V (batch, kv_seq, D or D_v), each plus
    its slice of ``bias``, or K and V already in heads (batch, heads, kv_seq, size: no bias);
    ``past_key``/``past_value`` (batch, heads, past_seq, size) are prepended. Outputs: (batch,
    seq, D_v), ``present_key``, ``present_value`` and ``qk``, the scores before the softmax.

    ``key_padding_mask``: (batch,) ends, (3 * batch + 2,) read by its first batch entries,
    (batch, total_seq) or (batch, seq, total_seq). Declined, as on onnxruntime's CPU
    kernel: packed QKV (no key; or a 5-D query) and packed KV (a 5-D key); also the
    buffer-sharing inputs ``past_sequence_length`` and ``cache_indirection``, and bfloat16.
    """
    q_in = np.asarray(query)
    dtype = q_in.dtype
    if q_in.ndim != 3 or key is None or value is None or np.ndim(key) == 5:
        raise ValueError("packed QKV or KV is not implemented: give 3-D query, key and value")
    if np.ndim(key) != np.ndim(value):
        raise ValueError("key and value must have the same rank (3 or 4)")
    if (past_key is None) != (past_value is None):
        raise ValueError("past_key and past_value must be given together")
    hidden = q_in.shape[2]
    wide_bias = None if bias is None else _wide(bias)
    q = _projected(_wide(q_in), None if wide_bias is None else wide_bias[:hidden], num_heads)
    k_bias = v_bias = None
    if wide_bias is not None:
        k_bias, v_bias = wide_bias[hidden : 2 * hidden], wide_bias[2 * hidden :]
    k = _projected(_wide(key), k_bias, num_heads)
    v = _projected(_wide(value), v_bias, num_heads)
    cache = None if past_key is None else (_wide(past_key), _wide(past_value))
    out, qk, k, v = _attend_after_past(
        q, k, v, cache, key_padding_mask, attention_bias,
        causal=bool(unidirectional), fill=mask_filter_value, scale=scale, attention=False,
    )  # fmt: skip
    outputs = (_merge_heads(out), k, v, qk)
    return tuple(o.astype(dtype, copy=False) for o in outputs)  # type: ignore[return-value]


# --- EmbedLayerNormalization ----------------------------------------------------------------
def _rows(table: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """``table[ids]`` in float32, refusing ids outside the table (onnxruntime's error)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise ValueError(f"{what} out of range [0, {table.shape[0]})")
    return _wide(table)[ids]


def _layer_norm(x: np.ndarray, gamma: Any, beta: Any, epsilon: float) -> np.ndarray:
    """LayerNorm of float32 ``x`` over its last dim, scaled and shifted."""
    centred = x - x.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.mean(np.square(centred), axis=-1, keepdims=True) + epsilon)
    return centred * inv_std * _wide(gamma) + _wide(beta)


@kernels.register(
    "EmbedLayerNormalization", versions=(1,), domain=MS, check=input_dtypes(i2=_FLOATS)
)
def embed_layer_norm(
    input_ids: Any,
    segment_ids: Any = None,
    word_embedding: Any = None,
    position_embedding: Any = None,
    segment_embedding: Any = None,
    gamma: Any = None,
    beta: Any = None,
    mask: Any = None,
    position_ids: Any = None,
    *,
    epsilon: float = 9.999999960041972e-13,
    mask_index_type: int = 1,
) -> tuple[Any, Any, Any]:
    """BERT's embeddings: LayerNorm(word[input_ids] + position[position_ids] +
    segment[segment_ids]); positions 0..seq-1 unless ``position_ids`` (batch or 1, seq).

    Outputs: the result, ``mask_index`` (the number of 1s in each row of ``mask``, int32; 0
    without one) and ``embedding_sum`` (the sum before the LayerNorm).
    """
    ids = np.asarray(input_ids)
    words = np.asarray(word_embedding)
    positions = np.arange(ids.shape[1]) if position_ids is None else np.asarray(position_ids)
    total = _rows(words, ids, "input_ids")
    total += _rows(np.asarray(position_embedding), positions, "position ids")
    if segment_ids is not None and segment_embedding is not None:
        total += _rows(np.asarray(segment_embedding), segment_ids, "segment_ids")
    if mask is None:
        mask_index = np.zeros(ids.shape[0], np.int32)
    else:
        mask_index = np.count_nonzero(np.asarray(mask) == 1, axis=1).astype(np.int32)
    y = _layer_norm(total, gamma, beta, epsilon)
    return y.astype(words.dtype, copy=False), mask_index, total.astype(words.dtype, copy=False)


# --- normalisation and elementwise ----------------------------------------------------------
@kernels.register("SkipSimplifiedLayerNormalization", versions=(1,), domain=MS, check=_FLOAT_INPUT)
def skip_simplified_layer_norm(
    input: Any, skip: Any, gamma: Any, bias: Any = None, *, epsilon: float = 9.999999960041972e-13
) -> tuple[Any, Any, Any, Any]:
    """RMSNorm(input + skip + bias) * gamma over the last dim (float32 inside).

    Outputs like SkipLayerNormalization's: the result, the mean (zeros, as onnxruntime
    writes), 1/rms (keepdims, float32) and input + skip + bias.
    """
    x = np.asarray(input)
    total = x + np.asarray(skip)
    if bias is not None:
        total = total + np.asarray(bias)
    wide = _wide(total)
    inv_rms = 1.0 / np.sqrt(np.mean(np.square(wide), axis=-1, keepdims=True) + epsilon)
    y = wide * inv_rms * _wide(gamma)
    return y.astype(x.dtype, copy=False), np.zeros_like(inv_rms), inv_rms, total


@kernels.register("BiasAdd", versions=(1,), domain=MS, check=_FLOAT_INPUT)
def bias_add(X: Any, bias: Any, skip: Any) -> tuple[Any]:
    """X + bias + skip (a diffusion UNet's fused residual; onnxruntime has it on CUDA only)."""
    return (np.asarray(X) + np.asarray(bias) + np.asarray(skip),)


@kernels.register("BiasSplitGelu", versions=(1,), domain=MS, check=_FLOAT_INPUT)
def bias_split_gelu(X: Any, bias: Any) -> tuple[Any]:
    """left * Gelu(right) of the two halves of X + bias along the last dim (float32 inside;
    onnxruntime has it on CUDA only)."""
    x = np.asarray(X)
    total = _wide(x) + _wide(bias)
    left, right = np.split(total, 2, axis=-1)
    return ((left * gelu(right)).astype(x.dtype, copy=False),)


# --- RotaryEmbedding ------------------------------------------------------------------------
_ROTARY_CHECK = all_checks(
    _FLOAT_INPUT,
    _refuse_attrs({"is_packed_batching": "is_packed_batching=1 (ragged batches) is not supported"}),
)


def _rotary_layout(x: np.ndarray, num_heads: int, half: int) -> tuple[np.ndarray, int]:
    """``x`` viewed as (batch, seq, heads, size) or (batch, heads, seq, size), and the axis
    of its sequence."""
    if x.ndim == 4:
        return x, 2
    if x.ndim != 3:
        raise ValueError(f"RotaryEmbedding input must be 3-D or 4-D, got {x.ndim}-D")
    batch, seq, hidden = x.shape
    heads = num_heads or max(hidden // (2 * half), 1)
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
    return x.reshape(batch, seq, heads, hidden // heads), 1


def _positions(position_ids: Any, batch: int, seq: int, table: int) -> np.ndarray:
    """(batch, seq) cache rows: a (1,) start offset, or (batch, seq) ids."""
    ids = np.asarray(position_ids)
    rows = ids.reshape(-1)[0] + np.arange(seq)[None, :] if ids.size == 1 else ids
    rows = np.broadcast_to(rows, (batch, seq))
    if rows.min() < 0 or rows.max() >= table:
        raise ValueError(f"position ids out of range [0, {table})")
    return rows


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, interleaved: int) -> np.ndarray:
    """Rotate the pairs of ``x``'s last dim by the angles of ``cos``/``sin`` (one per pair):
    halves (x[i], x[i + half]) or, interleaved, neighbours (x[2i], x[2i + 1])."""
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        return np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(x.shape)
    a, b = np.split(x, 2, axis=-1)
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


@kernels.register("RotaryEmbedding", versions=(1,), domain=MS, check=_ROTARY_CHECK)
def rotary_embedding(
    input: Any,
    position_ids: Any,
    cos_cache: Any,
    sin_cache: Any,
    *,
    interleaved: int = 0,
    is_packed_batching: int = 0,
    num_heads: int = 0,
    rotary_embedding_dim: int = 0,
    scale: float = 1.0,
) -> tuple[Any]:
    """RoPE on (batch, seq, hidden) or (batch, heads, seq, size): the first
    ``rotary_embedding_dim`` (default the head size) of each head rotated by the angles of
    cache row ``position_ids[0] + s`` (a (1,) offset) or ``position_ids[b, s]``; the rest
    copied. ``scale`` is unused (as on onnxruntime's CPU kernel).

    Refused: a sequence longer than the cache (onnxruntime's CPU kernel refuses it too) and a
    cache wider than rotary_embedding_dim / 2 (onnxruntime then reads its rows at the wrong
    stride); declined: ``is_packed_batching`` and bfloat16.
    """
    if rotary_embedding_dim and not num_heads:
        raise ValueError("num_heads must be given with rotary_embedding_dim")
    x = np.asarray(input)
    cos, sin = _wide(cos_cache), _wide(sin_cache)
    table, half = cos.shape
    heads4, seq_axis = _rotary_layout(x, num_heads, half)
    rotary = rotary_embedding_dim or heads4.shape[-1]
    if 2 * half != rotary:
        raise ValueError(
            f"cos_cache has {half} columns; rotary_embedding_dim {rotary} needs {rotary // 2}"
        )
    batch, seq = heads4.shape[0], heads4.shape[seq_axis]
    if seq > table:
        raise ValueError(f"sequence length {seq} exceeds the cos/sin cache's {table} rows")
    rows = _positions(position_ids, batch, seq, table)
    head_axis = 2 if seq_axis == 1 else 1
    angles_cos = np.expand_dims(cos[rows], head_axis)  # broadcast over the heads
    angles_sin = np.expand_dims(sin[rows], head_axis)
    wide = _wide(heads4)
    out = wide.copy()
    out[..., :rotary] = _rotate(wide[..., :rotary], angles_cos, angles_sin, interleaved)
    return (out.reshape(x.shape).astype(x.dtype, copy=False),)


# --- MatMulNBits ----------------------------------------------------------------------------
_NBITS_CHECK = all_checks(
    _FLOAT_INPUT,
    attr_in("bits", (2, 4, 8), 4),  # as onnxruntime's CPU kernel
    _refuse_inputs({4: "g_idx (act-order quantisation, deprecated) is not implemented"}),
    _refuse_attrs({"weight_prepacked": "weights prepacked for another EP are not implemented"}),
)


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The ``count`` ``bits``-bit values packed along the last axis of uint8 ``packed``,
    low bits first."""
    shifts = np.arange(8 // bits, dtype=np.uint8) * np.uint8(bits)
    values = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return values.reshape(*packed.shape[:-1], -1)[..., :count]


def _nbits_weights(
    b: Any, scales: Any, zero_points: Any, *, n: int, k: int, bits: int, block_size: int
) -> np.ndarray:
    """The (K, N) float32 weights of MatMulNBits: ``(q - zero_point) * scale`` per block of
    ``block_size`` along K; the zero point defaults to 2**(bits - 1)."""
    blocks = -(-k // block_size)
    packed = np.asarray(b, np.uint8).reshape(n, blocks, -1)
    q = _unpack(packed, bits, block_size).astype(np.float32)
    scale = _wide(scales).reshape(n, blocks)
    if zero_points is None:
        point = np.full((n, blocks), 2.0 ** (bits - 1), np.float32)
    elif np.asarray(zero_points).dtype == np.uint8:
        point = _unpack(np.asarray(zero_points).reshape(n, -1), bits, blocks).astype(np.float32)
    else:
        point = _wide(zero_points).reshape(n, blocks)
    weights = (q - point[..., None]) * scale[..., None]
    return np.ascontiguousarray(weights.reshape(n, -1)[:, :k].T)


@kernels.register("MatMulNBits", versions=(1,), domain=MS, check=_NBITS_CHECK, factory=True)
@factory(bits=4, accuracy_level=0, weight_prepacked=0)
def matmul_nbits(info: NodeInfo, attrs: dict[str, Any]) -> Callable[..., tuple[Any]]:
    """A @ dequantised B (+ bias): B holds N rows of K ``bits``-bit values (2, 4 or 8) in
    blocks of ``block_size``, each block with a scale and a zero point (packed uint8 like B,
    or float; absent: 2**(bits - 1)). Constant weights are dequantised once, when the plan is
    built. ``accuracy_level`` is ignored: A is never quantised (onnxruntime's level 4 quantises
    A to int8 and differs by that rounding). Declined: ``g_idx``, prepacked weights, bfloat16.
    """
    shape = {
        "n": attrs["N"],
        "k": attrs["K"],
        "bits": attrs["bits"],
        "block_size": attrs["block_size"],
    }
    constants = [info.constant(i) for i in (1, 2, 3)]
    points_fixed = not _given(info, 3) or constants[2] is not None
    fixed = None
    if constants[0] is not None and constants[1] is not None and points_fixed:
        fixed = _nbits_weights(*constants, **shape)

    def run(
        A: Any, B: Any, scales: Any, zero_points: Any = None, g_idx: Any = None, bias: Any = None
    ) -> tuple[Any]:
        a = np.asarray(A)
        weights = fixed if fixed is not None else _nbits_weights(B, scales, zero_points, **shape)
        y = np.matmul(_wide(a), weights)
        if bias is not None:
            y += _wide(bias)
        return (y.astype(a.dtype, copy=False),)

    return run


# --- GroupQueryAttention --------------------------------------------------------------------
def _quant_none(info: NodeInfo) -> str | None:
    """Decline a quantised KV cache (k_quant_type / v_quant_type other than NONE)."""
    for name in ("k_quant_type", "v_quant_type"):
        value = info.attrs.get(name, "NONE")
        value = value.decode() if isinstance(value, bytes) else value
        if value != "NONE":
            return f"{name}={value!r} (a quantised KV cache) is not implemented"
    return None


_GQA_CHECK = all_checks(
    _FLOAT_INPUT,
    input_dtypes(i3=_FLOATS, i4=_FLOATS),
    _quant_none,
    _refuse_attrs(
        {
            "qk_output": "qk_output (the output_qk output) is not implemented",
            "sliding_window_cache": "sliding_window_cache=1 (a window-sized KV cache) is not "
            "implemented",
            "kv_cache_bit_width": "kv_cache_bit_width (a quantised KV cache) is not implemented",
        }
    ),
    _refuse_inputs(
        {
            12: "k_scale (a quantised KV cache) is not implemented",
            13: "v_scale (a quantised KV cache) is not implemented",
            14: f"q_norm_weight (a per-head Q/K RMS norm) is not implemented {_ORT_TOO}",
            15: f"k_norm_weight (a per-head Q/K RMS norm) is not implemented {_ORT_TOO}",
        }
    ),
    lambda info: "the output_qk output is not implemented" if any(info.node.outputs[3:]) else None,
)


def _gqa_positions(
    position_ids: Any, seqlens: np.ndarray, batch: int, seq: int, first_prompt: bool
) -> np.ndarray:
    """(batch, seq) rotary positions as onnxruntime derives them: ``position_ids`` when
    given; else ``s`` in a first prompt, ``seqlens_k[b] + 1 - seq + s`` after a past."""
    if position_ids is not None:
        ids = np.broadcast_to(np.asarray(position_ids, np.int64), (batch, seq))
        if first_prompt:  # onnxruntime reads only the first id then
            return ids.reshape(-1)[0] + np.broadcast_to(np.arange(seq), (batch, seq))
        return ids
    steps = np.arange(seq)[None, :]
    if first_prompt:
        return np.broadcast_to(steps, (batch, seq))
    return (seqlens[:, None] + 1 - seq) + steps


@kernels.register("GroupQueryAttention", versions=(1,), domain=MS, check=_GQA_CHECK)
def group_query_attention(
    query: Any,
    key: Any = None,
    value: Any = None,
    past_key: Any = None,
    past_value: Any = None,
    seqlens_k: Any = None,
    total_sequence_length: Any = None,
    cos_cache: Any = None,
    sin_cache: Any = None,
    position_ids: Any = None,
    attention_bias: Any = None,
    head_sink: Any = None,
    k_scale: Any = None,
    v_scale: Any = None,
    q_norm_weight: Any = None,
    k_norm_weight: Any = None,
    *,
    num_heads: int,
    kv_num_heads: int,
    scale: float = 0.0,
    softcap: float = 0.0,
    do_rotary: int = 0,
    rotary_interleaved: int = 0,
    local_window_size: int = -1,
    smooth_softmax: int = -1,
    causal: int = 1,
    qk_output: int = 0,
    qk_norm_epsilon: float = 1e-6,
    sliding_window_cache: int = 0,
    kv_cache_bit_width: int = 0,
    k_quant_type: Any = "NONE",
    v_quant_type: Any = "NONE",
) -> tuple[Any, Any, Any]:
    """Grouped-query attention with a KV cache (onnxruntime's CPU kernel): ``num_heads``
    query heads share ``kv_num_heads`` key/value heads in groups. Query (batch, seq, Hq * D)
    and key/value (batch, seq, Hkv * D), or all three packed in query; past_key/past_value
    (batch, Hkv, P, D). Row ``b`` attends to the first ``seqlens_k[b] + 1`` positions; in a
    first prompt (seq == total_sequence_length) the past is ignored, otherwise the new keys
    go after ``seqlens_k[b] + 1 - seq`` past ones. Outputs: (batch, seq, Hq * D) and the
    present key/value (batch, Hkv, max(P, total_sequence_length), D).

    As onnxruntime: ``do_rotary`` rotates Q and the new K by cos/sin cache rows at position
    ``s`` (first prompt: ``position_ids[0, 0] + s`` when given), after a past at
    ``seqlens_k[b] + 1 - seq + s`` (or ``position_ids[b, s]``); ``local_window_size`` W
    keeps the W latest keys up to each row's own; ``softcap`` caps the scaled scores
    (before ``attention_bias``); ``smooth_softmax`` > 0 and ``head_sink`` add a zero (or
    per-head) logit to each softmax; present rows past ``seqlens_k[b] + 1`` are zeros. Known
    difference: with both local_window_size and smooth_softmax/head_sink, the padding rows of
    a right-padded prompt (past ``seqlens_k[b]``, which nothing reads) differ from
    onnxruntime's.

    Declined: a quantised KV cache (k_scale, v_scale, k/v_quant_type, kv_cache_bit_width),
    sliding_window_cache, the output_qk output, q_norm_weight/k_norm_weight (onnxruntime's CPU
    kernel refuses them too), bfloat16.
    """
    q_in = np.asarray(query)
    dtype = q_in.dtype
    batch, seq, width = q_in.shape
    wide_q = _wide(q_in)
    if key is None:  # packed QKV
        size = width // (num_heads + 2 * kv_num_heads)
        q_w, kv_w = num_heads * size, kv_num_heads * size
        if q_w + 2 * kv_w != width:
            raise ValueError(f"packed QKV width {width} does not fit the head counts")
        wide_q, k_flat, v_flat = np.split(wide_q, [q_w, q_w + kv_w], axis=-1)
    else:
        if value is None:
            raise ValueError("key and value must be given together")
        k_flat, v_flat = _wide(key), _wide(value)
        size = width // num_heads
    if num_heads % kv_num_heads:
        raise ValueError(f"num_heads={num_heads} is not a multiple of kv_num_heads")
    q = wide_q.reshape(batch, seq, num_heads, size)
    k = k_flat.reshape(batch, seq, kv_num_heads, size)
    v = v_flat.reshape(batch, seq, kv_num_heads, size)
    seqlens = np.asarray(seqlens_k).reshape(-1).astype(np.int64)
    total = int(np.asarray(total_sequence_length).reshape(-1)[0])
    past_len = 0 if past_key is None else np.shape(past_key)[2]
    first_prompt = seq == total
    if do_rotary:
        if cos_cache is None or sin_cache is None:
            raise ValueError("do_rotary needs cos_cache and sin_cache")
        cos, sin = _wide(cos_cache), _wide(sin_cache)
        rotary = 2 * cos.shape[1]
        rows = _gqa_positions(position_ids, seqlens, batch, seq, first_prompt)
        if rows.min() < 0 or rows.max() >= cos.shape[0]:
            raise ValueError(f"rotary positions out of the cache's range [0, {cos.shape[0]})")
        c, s = cos[rows][:, :, None, :], sin[rows][:, :, None, :]
        q, k = q.copy(), k.copy()
        q[..., :rotary] = _rotate(q[..., :rotary], c, s, rotary_interleaved)
        k[..., :rotary] = _rotate(k[..., :rotary], c, s, rotary_interleaved)
    present_len = max(past_len, total)
    present_k = np.zeros((batch, kv_num_heads, present_len, size), np.float32)
    present_v = np.zeros_like(present_k)
    out = np.zeros((batch, num_heads, seq, size), np.float32)
    group = num_heads // kv_num_heads
    scale = scale or 1.0 / np.sqrt(np.float32(size))
    bias = None if attention_bias is None else _wide(attention_bias)
    sink = None if head_sink is None else _wide(head_sink)
    for b in range(batch):
        seen = int(seqlens[b]) + 1
        past_b = 0 if first_prompt else seen - seq
        if past_b < 0 or past_b + seq > present_len:
            raise ValueError(f"seqlens_k[{b}]={seen - 1} does not fit the sequence lengths")
        if past_b:
            present_k[b, :, :past_b] = _wide(past_key[b, :, :past_b])
            present_v[b, :, :past_b] = _wide(past_value[b, :, :past_b])
        present_k[b, :, past_b : past_b + seq] = k[b].transpose(1, 0, 2)
        present_v[b, :, past_b : past_b + seq] = v[b].transpose(1, 0, 2)
        keys = np.repeat(present_k[b, :, :seen], group, axis=0)  # (Hq, seen, D)
        values = np.repeat(present_v[b, :, :seen], group, axis=0)
        scores = np.matmul(q[b].transpose(1, 0, 2), np.swapaxes(keys, -1, -2)) * np.float32(scale)
        if softcap > 0:
            scores = np.float32(softcap) * np.tanh(scores / np.float32(softcap))
        if bias is not None:
            scores = scores + bias[min(b, bias.shape[0] - 1)][:, :, :seen]
        where = np.arange(seen)[None, :]
        at = past_b + np.arange(seq)[:, None]  # each row's absolute position
        visible = (where <= at) if causal else np.ones((seq, seen), bool)
        if local_window_size > 0:
            visible &= where > at - local_window_size
        scores = np.where(visible, scores, -np.inf)
        top = scores.max(axis=-1, keepdims=True)
        if sink is not None or smooth_softmax > 0:
            logit = np.zeros((num_heads, 1, 1), np.float32)
            if sink is not None:
                logit = sink.reshape(num_heads, 1, 1)
            top = np.maximum(top, logit)
            probs = np.exp(scores - top)
            probs /= probs.sum(axis=-1, keepdims=True) + np.exp(logit - top)
        else:
            top = np.where(np.isfinite(top), top, 0)
            probs = np.exp(scores - top)
            total_p = probs.sum(axis=-1, keepdims=True)
            probs = np.divide(probs, total_p, out=np.zeros_like(probs), where=total_p > 0)
        out[b] = np.matmul(probs, values)
    outputs = (_merge_heads(out), present_k, present_v)
    return tuple(o.astype(dtype, copy=False) for o in outputs)  # type: ignore[return-value]
