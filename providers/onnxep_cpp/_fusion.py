"""``CppProvider.compile``: a segment run by one function, with Relu fused into its producer.

A Conv, Add or BatchNormalization whose only reader is a Relu of the same segment becomes
one C++ call (Conv with its ReLU epilogue, ``add_relu``, ``channel_affine(relu=True)``),
saving a pass over memory and a Python call. Nodes
are matched by kernel identity, not by name. Values are freed after their last use, as in
the plan. Segments with nothing to fuse return None and run node by node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from onnxep.graph import Node, NodeInfo
from onnxep.provider import Segment
from onnxep.registry import is_multi_output
from onnxep_cpp import _elementwise, _nn, _normalization
from onnxep_cpp._registry import native

if TYPE_CHECKING:
    from onnxep_cpp import CppProvider

__all__ = ["compile_segment"]

Step = tuple[Callable[..., Any], list[int], list[int], bool, list[int]]


def _fused_conv(info: NodeInfo, threads: int) -> Callable[..., Any]:
    attrs = dict(info.attrs)

    def conv_relu(X: Any, W: Any, B: Any = None) -> Any:
        return _nn.conv2d_call(X, W, B, attrs, True, threads)

    return conv_relu


def _fused_add(info: NodeInfo, threads: int) -> Callable[..., Any]:
    return functools.partial(native.add_relu, threads=threads)


def _fused_batch_norm(info: NodeInfo, threads: int) -> Callable[..., Any]:
    epsilon = float(info.attrs.get("epsilon", 1e-5))

    def batch_norm_relu(X: Any, scale: Any, B: Any, mean: Any, var: Any) -> Any:
        a, b = _normalization.folded_batch_norm(scale, B, mean, var, epsilon)
        return native.channel_affine(X, a, b, relu=True, threads=threads)

    return batch_norm_relu


#: kernel function -> factory of the fused "kernel then Relu" callable
FUSIONS: dict[Callable[..., Any], Callable[[NodeInfo, int], Callable[..., Any]]] = {
    _nn.conv: _fused_conv,
    _elementwise.BINARY["add"]: _fused_add,
    _normalization.batch_normalization: _fused_batch_norm,
}
RELU = _elementwise.UNARY["relu"]


def _fusable_pairs(provider: CppProvider, segment: Segment) -> dict[int, Node]:
    """Producer node index -> the Relu that is the only reader of its output."""
    graph = segment.graph
    readers = graph.consumers()
    members = {n.index for n in segment.nodes}
    pairs: dict[int, Node] = {}
    for node in segment.nodes:
        kernel = provider.kernel_for(segment.info(node))
        out = node.outputs[0]
        if kernel is None or kernel.fn not in FUSIONS or any(node.outputs[1:]) or not out:
            continue
        users = readers.get(out, [])
        if len(users) != 1 or out in graph.outputs or users[0].index not in members:
            continue
        relu = provider.kernel_for(segment.info(users[0]))
        if relu is not None and relu.fn is RELU:
            pairs[node.index] = users[0]
    return pairs


def compile_segment(
    provider: CppProvider, segment: Segment
) -> Callable[..., tuple[Any, ...]] | None:
    """One callable for the segment when something fuses; None otherwise."""
    pairs = _fusable_pairs(provider, segment)
    if not pairs:
        return None
    skipped = {relu.index for relu in pairs.values()}
    slots: dict[str, int] = {name: i for i, name in enumerate(segment.inputs)}
    plan: list[tuple[Callable[..., Any], Sequence[str], Sequence[str], bool]] = []
    for node in segment.nodes:
        if node.index in skipped:
            continue
        info = segment.info(node)
        if node.index in pairs:
            fn = FUSIONS[provider.kernel_for(info).fn](info, provider.threads or 0)  # type: ignore[union-attr]
            plan.append((fn, node.inputs, pairs[node.index].outputs, False))
        else:
            plan.append((provider.bind(info), node.inputs, node.outputs, is_multi_output(node.key)))
        for name in plan[-1][2]:
            if name:
                slots.setdefault(name, len(slots))
    steps = _steps(plan, slots, segment.outputs)
    outputs = [slots[name] for name in segment.outputs]
    size = len(slots)

    def run(*args: Any) -> tuple[Any, ...]:
        env: list[Any] = [*args, *([None] * (size - len(args)))]
        for fn, ins, outs, multi, free in steps:
            result = fn(*[env[i] if i >= 0 else None for i in ins])
            if multi:
                for slot, value in zip(outs, result):
                    if slot >= 0:
                        env[slot] = value
            else:
                env[outs[0]] = result
            for slot in free:
                env[slot] = None
        return tuple(env[i] for i in outputs)

    return run


def _steps(
    plan: list[tuple[Callable[..., Any], Sequence[str], Sequence[str], bool]],
    slots: dict[str, int],
    keep: Sequence[str],
) -> list[Step]:
    """Slot numbers per step, and the slots each step reads for the last time."""
    last: dict[str, int] = {}
    for i, (_, ins, _, _) in enumerate(plan):
        for name in ins:
            if name:
                last[name] = i
    steps: list[Step] = []
    for i, (fn, ins, outs, multi) in enumerate(plan):
        free = [slots[n] for n in dict.fromkeys(ins) if n and last[n] == i and n not in keep]
        steps.append(
            (
                fn,
                [slots[n] if n else -1 for n in ins],
                [slots[n] if n else -1 for n in outs],
                multi,
                free,
            )
        )
    return steps
