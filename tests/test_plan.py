"""The generated plan: values freed after last use, attributes bound once, graph edge cases."""

from __future__ import annotations

import re
import weakref
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxep
from onnxep.registry import since_versions

ort = pytest.importorskip("onnxruntime", reason="edge cases are compared with onnxruntime")
REFERENCE = "ReferenceExecutionProvider"
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3)).astype(np.float32)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list[Any]],
    outputs: list[str],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 18,
    int64: tuple[str, ...] = (),
) -> onnx.ModelProto:
    """A model with float inputs; outputs are float (int64 for those named in ``int64``)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, _elem(n in int64), None) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _elem(is_int64: bool) -> int:
    return TensorProto.INT64 if is_int64 else TensorProto.FLOAT


def _reference(model: onnx.ModelProto) -> onnxep.InferenceSession:
    return onnxep.InferenceSession(model, providers=[REFERENCE])


def _same_as_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[Any]:
    """Run on the reference provider and on onnxruntime; the outputs must agree."""
    ours = _reference(model).run(None, feeds)
    theirs = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype and a.shape == b.shape, i
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"output {i}")
    return ours


# --- freeing ---------------------------------------------------------------------------------
def _chain() -> onnx.ModelProto:
    """big = Relu(x); n = Neg(big); a = Add(n, big); y = Exp(a): big's last use is Add."""
    nodes = [
        helper.make_node("Relu", ["x"], ["big"]),
        helper.make_node("Neg", ["big"], ["n"]),
        helper.make_node("Add", ["n", "big"], ["a"]),
        helper.make_node("Exp", ["a"], ["y"]),
    ]
    return _model(nodes, {"x": ["N", 3]}, ["y"])


def _deleted_after(source: str) -> dict[str, int]:
    """Variable -> index of the kernel call line after which it is deleted."""
    calls = [line.strip() for line in source.splitlines()[1:]]
    result: dict[str, int] = {}
    call_index = -1
    for line in calls:
        if line.startswith("del "):
            for var in line[4:].split(", "):
                result[var] = call_index
        else:
            call_index += 1
    return result


def test_generated_code_deletes_each_intermediate_after_its_last_use() -> None:
    source = _reference(_chain()).plan.source
    lines = [line.strip() for line in source.splitlines()[1:]]
    calls = [line for line in lines if not line.startswith(("del ", "return"))]
    assert len(calls) == 4, source
    defined = [line.split(" = ")[0] for line in calls]  # big, n, a, y
    deleted = _deleted_after(source)
    assert deleted["a0"] == 0, source  # x after Relu
    assert deleted[defined[0]] == 2, source  # big after Add, not after Neg
    assert deleted[defined[1]] == 2 and deleted[defined[2]] == 3, source
    assert defined[3] not in deleted, source  # the output lives to the return
    assert lines[-1] == f"return ({defined[3]},)"


class Tracked(np.ndarray):
    """An array that can be watched through a weak reference."""


def _tracking_provider(events: list[tuple[str, bool]]) -> onnxep.Provider:
    """Relu and Split make a watched array; Neg/Add/Exp record whether it is still alive."""
    kernels = onnxep.KernelRegistry()
    watched: list[weakref.ref[Any]] = []

    def probe(op: str) -> None:
        events.append((op, watched[-1]() is not None))

    @kernels.register("Relu", versions=since_versions("Relu"))
    def relu(x: np.ndarray) -> np.ndarray:
        big = np.maximum(x, 0).view(Tracked)
        watched.append(weakref.ref(big))
        return big

    @kernels.register("Split", versions=(18,))
    def split(x: np.ndarray, sizes: Any = None, *, axis: int = 0, num_outputs: int = 2) -> Any:
        first, *rest = np.array_split(x, num_outputs, axis=axis)
        big = first.view(Tracked)
        watched.append(weakref.ref(big))
        return (big, *rest)

    @kernels.register("Neg", versions=since_versions("Neg"))
    def neg(x: np.ndarray) -> np.ndarray:
        probe("Neg")
        return -np.asarray(x)

    @kernels.register("Add", versions=since_versions("Add"))
    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        probe("Add")
        return np.add(np.asarray(a), np.asarray(b))

    @kernels.register("Exp", versions=since_versions("Exp"))
    def exp(x: np.ndarray) -> np.ndarray:
        probe("Exp")
        return np.exp(x)

    class TrackingProvider(onnxep.Provider):
        name = "TrackingExecutionProvider"

    TrackingProvider.kernels = kernels
    return TrackingProvider()


def test_a_big_intermediate_is_released_before_the_run_ends() -> None:
    events: list[tuple[str, bool]] = []
    session = onnxep.InferenceSession(_chain(), providers=[_tracking_provider(events)])
    assert {session.assignment(i) for i in range(4)} == {"TrackingExecutionProvider"}
    x = RNG.standard_normal((256, 3)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, np.exp(np.maximum(x, 0) - np.maximum(x, 0)))
    assert events == [("Neg", True), ("Add", True), ("Exp", False)]


def test_an_output_of_a_multi_output_node_is_released_after_its_last_use() -> None:
    nodes = [
        helper.make_node("Split", ["x"], ["p", "q"], axis=0, num_outputs=2),
        helper.make_node("Neg", ["p"], ["n"]),  # p's only use
        helper.make_node("Add", ["n", "q"], ["a"]),
        helper.make_node("Exp", ["a"], ["y"]),
    ]
    events: list[tuple[str, bool]] = []
    model = _model(nodes, {"x": [4, 3]}, ["y"])
    session = onnxep.InferenceSession(model, providers=[_tracking_provider(events)])
    assert {session.assignment(i) for i in range(4)} == {"TrackingExecutionProvider"}
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, np.exp(x[2:] - x[:2]), rtol=1e-6)
    assert events == [("Neg", True), ("Add", False), ("Exp", False)], session.plan.source


# --- attributes bound once -------------------------------------------------------------------
def test_attributes_are_bound_once_not_per_run() -> None:
    built: list[dict[str, Any]] = []
    calls: list[int] = []
    kernels = onnxep.KernelRegistry()

    @kernels.register("LeakyRelu", versions=since_versions("LeakyRelu"), factory=True)
    def leaky_relu(info: onnxep.NodeInfo) -> Any:
        alpha = info.attrs.get("alpha", 0.01)
        built.append(dict(info.attrs))

        def run(x: np.ndarray) -> np.ndarray:
            calls.append(1)
            return np.where(x >= 0, x, alpha * x)

        return run

    class FactoryProvider(onnxep.Provider):
        name = "FactoryExecutionProvider"

    FactoryProvider.kernels = kernels
    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["h"], alpha=0.5),
        helper.make_node("LeakyRelu", ["h"], ["y"], alpha=0.25),
    ]
    model = _model(nodes, {"x": [2, 3]}, ["y"])
    session = onnxep.InferenceSession(model, providers=[FactoryProvider()])
    assert built == [{"alpha": 0.5}, {"alpha": 0.25}]
    for _ in range(3):
        (y,) = session.run(None, {"x": X})
    assert len(built) == 2 and len(calls) == 6
    np.testing.assert_allclose(y, np.where(X >= 0, X, 0.125 * X), rtol=1e-6)
    assert "alpha" not in session.plan.source  # nothing about attributes is left per run


def test_reference_kernels_see_attributes_bound_into_the_plan() -> None:
    model = _model([helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.5)], {"x": [2, 3]}, ["y"])
    session = _reference(model)
    assert re.fullmatch(
        r"def run\(a0\):\n    v\d+ = k\d+\(a0\)\n    del a0\n    return \(v\d+,\)\n",
        session.plan.source,
    ), session.plan.source
    np.testing.assert_allclose(session.run(None, {"x": X})[0], np.where(X >= 0, X, 0.5 * X))


# --- graph edge cases ------------------------------------------------------------------------
def test_nodes_listed_out_of_topological_order_still_run() -> None:
    nodes = [
        helper.make_node("Exp", ["a"], ["y"]),
        helper.make_node("Add", ["n", "r"], ["a"]),
        helper.make_node("Neg", ["r"], ["n"]),
        helper.make_node("Relu", ["x"], ["r"]),
    ]
    model = _model(nodes, {"x": [2, 3]}, ["y"])
    (y,) = _same_as_onnxruntime(model, {"x": X})
    np.testing.assert_allclose(y, np.ones_like(X))
    assert [n.op_type for n in _reference(model).plan.graph.nodes] == ["Relu", "Neg", "Add", "Exp"]


def test_nodes_out_of_order_inside_a_subgraph_still_run() -> None:
    body_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])
    then = helper.make_graph(
        [helper.make_node("Neg", ["u"], ["t"]), helper.make_node("Relu", ["x"], ["u"])],
        "then", [], [body_out],
    )  # fmt: skip
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "else", [], [body_out])
    nodes = [
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
    ]
    model = _model(nodes, {"x": [2, 3]}, ["y"], {"zero": np.array(-1e9, np.float32)})
    (y,) = _reference(model).run(None, {"x": X})  # onnxruntime refuses this one
    np.testing.assert_allclose(y, -np.maximum(X, 0))


def test_graph_outputs_that_are_an_input_or_an_initializer() -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = _model(
        [helper.make_node("Add", ["x", "w"], ["y"])], {"x": [2, 3]}, ["x", "w", "y"], {"w": w}
    )
    x_out, w_out, y = _same_as_onnxruntime(model, {"x": X})
    np.testing.assert_array_equal(x_out, X)
    np.testing.assert_array_equal(w_out, w)
    np.testing.assert_allclose(y, X + w)


def _aliasing_model() -> onnx.ModelProto:
    """Outputs that are, or view, model constants: an initializer, its Identity and Reshape."""
    nodes = [
        helper.make_node("Identity", ["w"], ["same"]),
        helper.make_node("Reshape", ["w", "shape"], ["view"]),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    constants = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "shape": np.array([3, 2])}
    return _model(nodes, {"x": [2, 3]}, ["w", "same", "view", "y"], constants)


#: Providers known to hand out an array they keep (reported to their owners).
_ALIASING: dict[str, str] = {}


def _available_providers() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=_ALIASING[name]))
        if name in _ALIASING
        else name
        for name in onnxep.get_available_providers()
    ]


@pytest.mark.parametrize("provider", _available_providers())
def test_writing_into_outputs_never_changes_the_model(provider: str) -> None:
    options = onnxep.SessionOptions()  # no constant folding: the provider sees the Identity
    options.graph_optimization_level = onnxep.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxep.InferenceSession(_aliasing_model(), options, providers=[provider])
    first = session.run(None, {"x": X})
    for out in first:
        out[...] = 99  # onnxruntime's outputs are the caller's to change
    again = session.run(None, {"x": X})
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(again[0], w)
    np.testing.assert_array_equal(again[1], w)
    np.testing.assert_array_equal(again[2], w.reshape(3, 2))
    np.testing.assert_allclose(again[3], X + w)


def test_missing_optional_inputs_are_passed_as_none() -> None:
    nodes = [
        helper.make_node("Clip", ["x", "", "hi"], ["clipped"]),  # no min, a max
        helper.make_node("Pad", ["clipped", "pads", ""], ["y"]),  # no constant_value
    ]
    constants = {"hi": np.array(0.5, np.float32), "pads": np.array([0, 1, 0, 1])}
    model = _model(nodes, {"x": [2, 3]}, ["y"], constants)
    (y,) = _same_as_onnxruntime(model, {"x": X})
    np.testing.assert_allclose(y, np.pad(np.minimum(X, 0.5), ((0, 0), (1, 1))))
    seen: list[tuple[Any, ...]] = []
    kernels = onnxep.KernelRegistry()

    @kernels.register("Clip", versions=(13,))
    def clip(x: np.ndarray, low: Any = "absent", high: Any = "absent") -> np.ndarray:
        seen.append((low, high))
        return np.clip(x, low, high)

    class ClipProvider(onnxep.Provider):
        name = "ClipExecutionProvider"

    ClipProvider.kernels = kernels
    session = onnxep.InferenceSession(model, providers=[ClipProvider()])
    np.testing.assert_allclose(session.run(None, {"x": X})[0], y)
    assert len(seen) == 1 and seen[0][0] is None and float(seen[0][1]) == 0.5


def test_unused_and_skipped_optional_outputs() -> None:
    scale, bias = np.ones(3, np.float32), np.zeros(3, np.float32)
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"]),  # mask produced, never read
        helper.make_node("LayerNormalization", ["d", "scale", "bias"], ["ln", "", "inv"]),
        helper.make_node("TopK", ["ln", "k"], ["values", "indices"]),  # values never read
    ]
    constants = {"scale": scale, "bias": bias, "k": np.array([2])}
    model = _model(nodes, {"x": [2, 3]}, ["ln", "inv", "indices"], constants, int64=("indices",))
    _, inv, indices = _same_as_onnxruntime(model, {"x": X})
    assert indices.dtype == np.int64 and indices.shape == (2, 2)
    assert inv.shape == (2, 1)
    source = _reference(model).plan.source
    assert source.count("_r[") == 6, source  # d, mask, ln, inv, values, indices; no Mean


def test_multiple_outputs_are_unpacked_and_each_freed() -> None:
    nodes = [
        helper.make_node("Split", ["x"], ["s0", "s1", "s2"], axis=1, num_outputs=3),
        helper.make_node("Mul", ["s0", "s2"], ["m"]),
        helper.make_node("Concat", ["m", "s1", "m"], ["y"], axis=1),
    ]
    model = _model(nodes, {"x": [2, 3]}, ["y", "s1"])
    y, s1 = _same_as_onnxruntime(model, {"x": X})
    np.testing.assert_allclose(y[:, 0], X[:, 0] * X[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(s1, X[:, 1:2])
    source = _reference(model).plan.source
    deleted = _deleted_after(source)
    assert len([v for v in deleted if v.startswith("v")]) == 3, source  # s0, s2, m


def test_outputs_never_alias_the_callers_feeds():
    from graphs import model, node

    m = model(
        [node("Identity", ["x"], ["same"]), node("Reshape", ["x", "shape"], ["view"])],
        {"x": [2, 3]},
        ["same", "view"],
        {"shape": np.array([3, 2], dtype=np.int64)},
    )
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    same, view = onnxep.InferenceSession(m, providers=["reference"]).run(None, {"x": x})
    assert not np.shares_memory(same, x) and not np.shares_memory(view, x)
    np.testing.assert_array_equal(view, x.reshape(3, 2))


# --- activations in place --------------------------------------------------------------------
W = RNG.standard_normal((3, 4)).astype(np.float32)
XW = RNG.standard_normal((5, 3)).astype(np.float32)


def _in_place_ops(session: onnxep.InferenceSession) -> list[str]:
    """The kernels of the plan bound as their in-place variant."""
    names = []
    for fn in session.plan._namespace.values():
        name = getattr(getattr(fn, "func", fn), "__name__", "")
        if name.endswith("_in_place"):
            names.append(name)
    return names


@pytest.mark.parametrize(
    ("op", "attrs", "expected"),
    [
        ("Relu", {}, lambda m: np.maximum(m, 0)),
        ("LeakyRelu", {"alpha": 0.2}, lambda m: np.where(m < 0, m * np.float32(0.2), m)),
        ("Clip", {"min": -0.5, "max": 0.5}, lambda m: np.clip(m, -0.5, 0.5)),
    ],
)
def test_an_activation_overwrites_a_product_nothing_else_reads(op, attrs, expected) -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node(op, ["m"], ["y"], **attrs),
    ]
    session = _reference(
        _model(nodes, {"x": [5, 3]}, ["y"], {"w": W}, opset=6 if attrs.get("max") else 18)
    )
    (y,) = session.run(None, {"x": XW})
    np.testing.assert_allclose(y, expected(XW @ W), rtol=1e-6)
    assert len(_in_place_ops(session)) == 1, session.plan.source


def test_a_value_read_twice_is_not_overwritten() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Relu", ["m"], ["r"]),
        helper.make_node("Add", ["m", "r"], ["y"]),
    ]
    session = _reference(_model(nodes, {"x": [5, 3]}, ["y"], {"w": W}))
    (y,) = session.run(None, {"x": XW})
    m = XW @ W
    np.testing.assert_allclose(y, m + np.maximum(m, 0), rtol=1e-6)
    assert _in_place_ops(session) == []


def test_a_graph_output_is_not_overwritten() -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    session = _reference(_model(nodes, {"x": [5, 3]}, ["m", "y"], {"w": W}))
    m, y = session.run(None, {"x": XW})
    np.testing.assert_allclose(m, XW @ W, rtol=1e-6)
    np.testing.assert_allclose(y, np.maximum(XW @ W, 0), rtol=1e-6)
    assert _in_place_ops(session) == []


def test_feeds_and_views_are_not_overwritten() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),  # the caller's feed
        helper.make_node("Transpose", ["r"], ["t"]),  # a view of r
        helper.make_node("LeakyRelu", ["t"], ["y"], alpha=0.5),
    ]
    x = XW.copy()
    session = _reference(_model(nodes, {"x": [5, 3]}, ["y"]))
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(x, XW)
    np.testing.assert_allclose(y, np.maximum(XW, 0).T, rtol=1e-6)
    assert _in_place_ops(session) == []


def test_a_value_a_subgraph_reads_is_not_overwritten() -> None:
    then_branch = helper.make_graph(
        [helper.make_node("Identity", ["m"], ["out"])],
        "then",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["m"], ["out"])],
        "else",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Relu", ["m"], ["r"]),
        helper.make_node("ReduceSum", ["r"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch),
    ]
    constants = {"zero": np.array(0, np.float32)}
    session = _reference(_model(nodes, {"x": [5, 3]}, ["y"], {"w": W, **constants}))
    (y,) = session.run(None, {"x": XW})
    m = XW @ W
    np.testing.assert_allclose(y, m if np.maximum(m, 0).sum() > 0 else -m, rtol=1e-6)
    assert _in_place_ops(session) == []


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0, 1.5, -0.5])
def test_leaky_relu_matches_its_definition_at_the_edges(alpha: float) -> None:
    x = np.array([-np.inf, -3.0, -1e-40, -0.0, 0.0, 2.5, np.inf, np.nan], np.float32)
    nodes = [
        helper.make_node("Add", ["x", "x"], ["d"]),
        helper.make_node("LeakyRelu", ["d"], ["y"], alpha=alpha),
    ]
    session = _reference(_model(nodes, {"x": [8]}, ["y"]))
    (y,) = session.run(None, {"x": x})
    d = x + x
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(y, np.where(d < 0, d * np.float32(alpha), d))
