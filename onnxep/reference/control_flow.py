"""If, Loop, Scan and Optional, running bodies as compiled onnxep plans.

The plan hands each body in as a :class:`~onnxep.plan.SubgraphFunction` called with the
body's formal inputs followed by the outer-scope values the node reads; those outer values
arrive here after the node's own inputs (``*rest``), and the body function picks the ones
it needs.

Values keep their ONNX kind: arrays for tensors, lists for sequences, ``None`` for an empty
optional (so onnx's own OptionalHasElement / OptionalGetElement / Sequence* ops work on them).
onnx's reference Loop stacks scan outputs with the wrong shape and its Optional wraps the
value in a list; both are written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxep.reference._registry import kernels
from onnxep.registry import since_versions

__all__: list[str] = []


def _flag(value: Any) -> bool:
    """A boolean scalar tensor (shape () or (1,)) as a Python bool."""
    return bool(np.asarray(value).reshape(-1)[0])


@kernels.register("If", versions=since_versions("If"))
def if_(cond: Any, *outer: Any, then_branch: Any, else_branch: Any) -> tuple[Any, ...]:
    """Run one branch; outputs are the branch's outputs."""
    branch = then_branch if _flag(cond) else else_branch
    return branch(*outer)


@kernels.register("Optional", versions=since_versions("Optional"))
def optional(input: Any = None, *, type: Any = None) -> Any:
    """An optional holding ``input``, or the empty optional (None)."""
    return input


def _empty_scan_output(body: Any, index: int, axis: int = 0) -> np.ndarray:
    """The scan output of a loop that ran zero times: length 0 on the scan axis."""
    plan = body.plan
    value_type = plan.graph.type_of(plan.outputs[index])
    dtype = value_type.dtype if value_type.dtype is not None else np.dtype(np.float32)
    dims = [d if isinstance(d, int) else 0 for d in (value_type.shape or ())]
    dims.insert(axis if axis >= 0 else len(dims) + 1 + axis, 0)
    return np.empty(dims, dtype=dtype)


def _stack(pieces: list[Any], what: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(p) for p in pieces])
    except ValueError as exc:
        shapes = sorted({np.shape(p) for p in pieces})
        raise ValueError(f"{what} changes shape across iterations: {shapes}") from exc


@kernels.register("Loop", versions=since_versions("Loop"))
def loop(M: Any, cond: Any, *rest: Any, body: Any) -> tuple[Any, ...]:
    """Run ``body`` while ``i < M`` and ``cond``; returns final carried values, then scans.

    Scan outputs are stacked along a new first axis (one row per iteration).
    """
    n_carried = body.n_formal - 2
    carried = list(rest[:n_carried])
    outer = rest[n_carried:]
    n_scan = len(body.plan.outputs) - 1 - n_carried
    trip = None if M is None else int(np.asarray(M).reshape(-1)[0])
    keep = True if cond is None else _flag(cond)
    scans: list[list[Any]] = [[] for _ in range(n_scan)]
    i = 0
    while keep and (trip is None or i < trip):
        out = body(np.array(i, dtype=np.int64), np.array(keep), *carried, *outer)
        keep = _flag(out[0])
        carried = list(out[1 : 1 + n_carried])
        for pieces, value in zip(scans, out[1 + n_carried :]):
            pieces.append(value)
        i += 1
    stacked = [
        _stack(pieces, f"Loop scan output {k}")
        if pieces
        else _empty_scan_output(body, 1 + n_carried + k)
        for k, pieces in enumerate(scans)
    ]
    return (*carried, *stacked)


def _run_scan(
    body: Any,
    states: Sequence[Any],
    inputs: Sequence[np.ndarray],
    reverse: Sequence[bool],
    outer: Sequence[Any],
    length: int,
) -> tuple[list[Any], list[list[Any]]]:
    """Iterate ``length`` steps over inputs whose scan axis is first; per-step outputs."""
    states = list(states)
    n_state = len(states)
    n_scan = len(body.plan.outputs) - n_state
    scans: list[list[Any]] = [[] for _ in range(n_scan)]
    last = length - 1
    for t in range(length):
        slices = [x[last - t] if rev else x[t] for x, rev in zip(inputs, reverse)]
        out = body(*states, *slices, *outer)
        states = list(out[:n_state])
        for pieces, value in zip(scans, out[n_state:]):
            pieces.append(value)
    return states, scans


def _scan_output(body: Any, index: int, pieces: list[Any], reverse: bool, axis: int) -> np.ndarray:
    if not pieces:
        return _empty_scan_output(body, index, axis)
    stacked = _stack(pieces, f"Scan output {index}")
    if reverse:
        stacked = stacked[::-1]
    if axis < 0:
        axis += stacked.ndim
    return np.ascontiguousarray(np.moveaxis(stacked, 0, axis)) if axis else stacked


@kernels.register("Scan", versions=since_versions("Scan", first=9))
def scan(
    *args: Any,
    body: Any,
    num_scan_inputs: int,
    scan_input_axes: tuple[int, ...] | None = None,
    scan_input_directions: tuple[int, ...] | None = None,
    scan_output_axes: tuple[int, ...] | None = None,
    scan_output_directions: tuple[int, ...] | None = None,
) -> tuple[Any, ...]:
    """Scan-9 and later: states carried across steps over ``num_scan_inputs`` sliced inputs."""
    n_state = body.n_formal - num_scan_inputs
    states = args[:n_state]
    raw = args[n_state : body.n_formal]
    outer = args[body.n_formal :]
    in_axes = scan_input_axes or (0,) * num_scan_inputs
    in_dirs = scan_input_directions or (0,) * num_scan_inputs
    inputs = [
        np.moveaxis(np.asarray(x), a, 0) if a else np.asarray(x) for x, a in zip(raw, in_axes)
    ]
    lengths = {x.shape[0] for x in inputs}
    if len(lengths) > 1:
        raise ValueError(f"Scan inputs have different sequence lengths: {sorted(lengths)}")
    length = lengths.pop() if lengths else 0
    states, scans = _run_scan(body, states, inputs, [bool(d) for d in in_dirs], outer, length)
    out_axes = scan_output_axes or (0,) * len(scans)
    out_dirs = scan_output_directions or (0,) * len(scans)
    outputs = [
        _scan_output(body, n_state + k, pieces, bool(out_dirs[k]), out_axes[k])
        for k, pieces in enumerate(scans)
    ]
    return (*states, *outputs)


@kernels.register("Scan", versions=(8,))
def scan_8(
    sequence_lens: Any,
    *args: Any,
    body: Any,
    num_scan_inputs: int,
    directions: tuple[int, ...] | None = None,
) -> tuple[Any, ...]:
    """Scan-8: a batch axis first, the sequence axis second, optional per-batch lengths.

    Steps past a batch entry's length leave its scan outputs zero, as onnxruntime does.
    """
    n_state = body.n_formal - num_scan_inputs
    states = [np.asarray(s) for s in args[:n_state]]
    inputs = [np.asarray(x) for x in args[n_state : body.n_formal]]
    outer = args[body.n_formal :]
    reverse = [bool(d) for d in (directions or (0,) * num_scan_inputs)]
    batch = (states or inputs)[0].shape[0]
    max_len = inputs[0].shape[1] if inputs else 0
    lens = [max_len] * batch if sequence_lens is None else [int(n) for n in sequence_lens]
    final: list[list[Any]] = [[] for _ in range(n_state)]
    rows: list[list[np.ndarray]] = []
    for b in range(batch):
        seqs = [x[b, : lens[b]] for x in inputs]
        end, scans = _run_scan(body, [s[b] for s in states], seqs, reverse, outer, lens[b])
        for acc, value in zip(final, end):
            acc.append(value)
        rows.append([_padded(body, n_state + k, p, max_len) for k, p in enumerate(scans)])
    outputs = [np.stack([row[k] for row in rows]) for k in range(len(rows[0]) if rows else 0)]
    return (*(np.stack(f) for f in final), *outputs)


def _padded(body: Any, index: int, pieces: list[Any], length: int) -> np.ndarray:
    stacked = _scan_output(body, index, pieces, False, 0)
    if stacked.shape[0] == length:
        return stacked
    pad = np.zeros((length - stacked.shape[0], *stacked.shape[1:]), dtype=stacked.dtype)
    return np.concatenate([stacked, pad])


@kernels.register("SequenceMap", versions=since_versions("SequenceMap"))
def sequence_map(input_sequence: list[Any], *rest: Any, body: Any) -> tuple[list[Any], ...]:
    """Apply ``body`` to each element; extra inputs are sequences (indexed) or tensors (shared).

    Runs the body as a compiled plan, so bodies reading outer-scope values work too.
    """
    n_extra = body.n_formal - 1
    extra = rest[:n_extra]
    outer = rest[n_extra:]
    results: list[list[Any]] = [[] for _ in body.plan.outputs]
    for i, element in enumerate(input_sequence):
        args = [x[i] if isinstance(x, list) else x for x in extra]
        for acc, value in zip(results, body(element, *args, *outer)):
            acc.append(value)
    return tuple(results)
