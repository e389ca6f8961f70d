"""Loop, Scan and If against onnxruntime, on what the node cases leave out.

Optional M / cond, early exit, zero iterations, scan outputs with rank > 0, Scan axes and
directions, Scan-8's batch axis with sequence lengths, and bodies reading outer-scope values
through nested subgraphs.

Sessions use the reference provider only, so these tests judge the control-flow kernels
and the plan's subgraph handling; test_node_cases.py runs the default provider chain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxep

ort = pytest.importorskip("onnxruntime", reason="the comparisons need onnxruntime")

F = TensorProto.FLOAT
I64 = TensorProto.INT64
B = TensorProto.BOOL


def _model(graph: onnx.GraphProto, opset: int) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return model.SerializeToString()


def _compare(model: bytes, feeds: dict[str, Any]) -> list[Any]:
    expected = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    actual = onnxep.InferenceSession(model, providers=["reference"]).run(None, feeds)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype, f"output {i}: {a.dtype} != {e.dtype}"
        assert a.shape == e.shape, f"output {i}: {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6, err_msg=f"output {i}")
    return actual


def _loop_body(stop_after: int | None) -> onnx.GraphProto:
    """acc += x * i (x from the outer scope); rows of acc and i*i are scanned."""
    nodes = [
        helper.make_node("Cast", ["i"], ["fi"], to=F),
        helper.make_node("Mul", ["x", "fi"], ["xi"]),
        helper.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
        helper.make_node("Identity", ["acc_out"], ["row"]),
        helper.make_node("Mul", ["fi", "fi"], ["square"]),
    ]
    if stop_after is None:
        nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    else:
        limit = helper.make_tensor("limit", I64, [], [stop_after])
        nodes.append(helper.make_node("Constant", [], ["limit"], value=limit))
        nodes.append(helper.make_node("Less", ["i", "limit"], ["cond_out"]))
    return helper.make_graph(
        nodes,
        "body",
        [
            helper.make_tensor_value_info("i", I64, []),
            helper.make_tensor_value_info("cond_in", B, []),
            helper.make_tensor_value_info("acc_in", F, [3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", B, []),
            helper.make_tensor_value_info("acc_out", F, [3]),
            helper.make_tensor_value_info("row", F, [3]),
            helper.make_tensor_value_info("square", F, []),
        ],
    )


def _loop_model(opset: int, with_m: bool, with_cond: bool, stop_after: int | None) -> bytes:
    inputs = [
        helper.make_tensor_value_info("x", F, [3]),
        helper.make_tensor_value_info("a", F, [3]),
    ]
    if with_m:
        inputs.append(helper.make_tensor_value_info("M", I64, []))
    if with_cond:
        inputs.append(helper.make_tensor_value_info("cond", B, []))
    loop = helper.make_node(
        "Loop",
        ["M" if with_m else "", "cond" if with_cond else "", "a"],
        ["acc", "rows", "squares"],
        body=_loop_body(stop_after),
    )
    outputs = [
        helper.make_tensor_value_info("acc", F, [3]),
        helper.make_tensor_value_info("rows", F, None),
        helper.make_tensor_value_info("squares", F, None),
    ]
    return _model(helper.make_graph([loop], "loop", inputs, outputs), opset)


@pytest.mark.parametrize("opset", [11, 13, 16, 21])
@pytest.mark.parametrize("trips", [0, 1, 5])
def test_loop_with_trip_count_and_cond(opset: int, trips: int) -> None:
    model = _loop_model(opset, with_m=True, with_cond=True, stop_after=None)
    feeds = {
        "x": np.array([1.0, 2.0, 3.0], np.float32),
        "a": np.zeros(3, np.float32),
        "M": np.array(trips, np.int64),
        "cond": np.array(True),
    }
    _, rows, squares = _compare(model, feeds)
    assert rows.shape == (trips, 3)  # onnx's ReferenceEvaluator gets this shape wrong
    assert squares.shape == (trips,)


def test_loop_cond_false_runs_zero_times() -> None:
    model = _loop_model(13, with_m=True, with_cond=True, stop_after=None)
    feeds = {
        "x": np.ones(3, np.float32),
        "a": np.full(3, 7.0, np.float32),
        "M": np.array(4, np.int64),
        "cond": np.array(False),
    }
    acc, rows, _ = _compare(model, feeds)
    np.testing.assert_array_equal(acc, feeds["a"])
    assert rows.shape[0] == 0


def test_loop_without_trip_count_stops_on_cond() -> None:
    model = _loop_model(16, with_m=False, with_cond=True, stop_after=3)
    feeds = {"x": np.ones(3, np.float32), "a": np.zeros(3, np.float32), "cond": np.array(True)}
    _, rows, _ = _compare(model, feeds)
    assert rows.shape == (4, 3)  # iterations 0..3; the body says stop after i == 3


def test_loop_without_cond_runs_m_times() -> None:
    model = _loop_model(13, with_m=True, with_cond=False, stop_after=None)
    feeds = {"x": np.ones(3, np.float32), "a": np.zeros(3, np.float32), "M": np.array(6, np.int64)}
    acc, _, _ = _compare(model, feeds)
    np.testing.assert_allclose(acc, np.full(3, 15.0, np.float32))


def _scan_body() -> onnx.GraphProto:
    """state += row * w (w from the outer scope); scans out state and row sums."""
    return helper.make_graph(
        [
            helper.make_node("Mul", ["row", "w"], ["scaled"]),
            helper.make_node("Add", ["state_in", "scaled"], ["state_out"]),
            helper.make_node("Add", ["row", "other"], ["mixed"]),
            helper.make_node("Identity", ["state_out"], ["trace"]),
        ],
        "scan_body",
        [
            helper.make_tensor_value_info("state_in", F, [4]),
            helper.make_tensor_value_info("row", F, [4]),
            helper.make_tensor_value_info("other", F, [4]),
        ],
        [
            helper.make_tensor_value_info("state_out", F, [4]),
            helper.make_tensor_value_info("trace", F, [4]),
            helper.make_tensor_value_info("mixed", F, [4]),
        ],
    )


SCAN_ATTRS = [
    pytest.param({}, id="defaults"),
    pytest.param({"scan_input_directions": [1, 0]}, id="reverse-input"),
    pytest.param({"scan_input_axes": [1, 0]}, id="input-axis-1"),
    pytest.param({"scan_input_axes": [-1, 0]}, id="input-axis-neg"),
    pytest.param({"scan_output_axes": [1, 0], "scan_output_directions": [0, 1]}, id="output-axes"),
    pytest.param({"scan_output_axes": [-1, 0]}, id="output-axis-neg"),
]


@pytest.mark.parametrize("opset", [11, 16, 21])
@pytest.mark.parametrize("attrs", SCAN_ATTRS)
def test_scan_axes_and_directions(opset: int, attrs: dict[str, Any]) -> None:
    node = helper.make_node(
        "Scan",
        ["s0", "xs", "ys"],
        ["s", "traces", "mixed"],
        body=_scan_body(),
        num_scan_inputs=2,
        **attrs,
    )
    graph = helper.make_graph(
        [node],
        "scan",
        [
            helper.make_tensor_value_info("s0", F, [4]),
            helper.make_tensor_value_info("xs", F, None),
            helper.make_tensor_value_info("ys", F, [5, 4]),
            helper.make_tensor_value_info("w", F, [4]),
        ],
        [helper.make_tensor_value_info(n, F, None) for n in ("s", "traces", "mixed")],
    )
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((5, 4)).astype(np.float32)
    if attrs.get("scan_input_axes", [0])[0] != 0:
        xs = np.ascontiguousarray(xs.T)
    feeds = {
        "s0": rng.standard_normal(4).astype(np.float32),
        "xs": xs,
        "ys": rng.standard_normal((5, 4)).astype(np.float32),
        "w": rng.standard_normal(4).astype(np.float32),
    }
    _compare(_model(graph, opset), feeds)


@pytest.mark.parametrize("lengths", [None, [3, 5]], ids=["full", "sequence_lens"])
@pytest.mark.parametrize("directions", [[0, 0], [1, 0]], ids=["forward", "reverse"])
def test_scan_8_batch_axis(lengths: list[int] | None, directions: list[int]) -> None:
    node = helper.make_node(
        "Scan",
        ["lens" if lengths else "", "s0", "xs", "ys"],
        ["s", "traces", "mixed"],
        body=_scan_body(),
        num_scan_inputs=2,
        directions=directions,
    )
    inputs = [
        helper.make_tensor_value_info("s0", F, [2, 4]),
        helper.make_tensor_value_info("xs", F, [2, 5, 4]),
        helper.make_tensor_value_info("ys", F, [2, 5, 4]),
        helper.make_tensor_value_info("w", F, [4]),
    ]
    if lengths:
        inputs.insert(0, helper.make_tensor_value_info("lens", I64, [2]))
    outputs = [helper.make_tensor_value_info(n, F, None) for n in ("s", "traces", "mixed")]
    graph = helper.make_graph([node], "scan8", inputs, outputs)
    rng = np.random.default_rng(1)
    feeds = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in (("s0", (2, 4)), ("xs", (2, 5, 4)), ("ys", (2, 5, 4)), ("w", (4,)))
    }
    if lengths:
        feeds["lens"] = np.array(lengths, np.int64)
    _compare(_model(graph, 8), feeds)


def _branch(name: str, reads: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Add", [reads, "acc_in"], [f"{name}_out"])],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", F, [2])],
    )


def test_if_inside_loop_reads_values_of_two_scopes() -> None:
    """Each branch reads a different value: one from the body, one from the main graph."""
    body = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["two"], value=helper.make_tensor("two", I64, [], [2])
            ),
            helper.make_node("Mod", ["i", "two"], ["parity"]),
            helper.make_node("Cast", ["parity"], ["odd"], to=B),
            helper.make_node("Mul", ["acc_in", "acc_in"], ["local"]),
            helper.make_node(
                "If",
                ["odd"],
                ["acc_out"],
                then_branch=_branch("then", "local"),
                else_branch=_branch("else", "bias"),
            ),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", I64, []),
            helper.make_tensor_value_info("cond_in", B, []),
            helper.make_tensor_value_info("acc_in", F, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", B, []),
            helper.make_tensor_value_info("acc_out", F, [2]),
        ],
    )
    loop = helper.make_node("Loop", ["M", "", "a"], ["acc"], body=body)
    graph = helper.make_graph(
        [loop],
        "nested",
        [
            helper.make_tensor_value_info("M", I64, []),
            helper.make_tensor_value_info("a", F, [2]),
            helper.make_tensor_value_info("bias", F, [2]),
        ],
        [helper.make_tensor_value_info("acc", F, [2])],
    )
    feeds = {
        "M": np.array(4, np.int64),
        "a": np.array([0.5, -1.0], np.float32),
        "bias": np.array([1.0, 2.0], np.float32),
    }
    _compare(_model(graph, 16), feeds)


def test_sequence_map_body_reads_outer_value() -> None:
    """Extra inputs: a sequence (indexed per element) and a tensor (shared); plus an outer one."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["x", "y"], ["s0"]),
            helper.make_node("Add", ["s0", "bias"], ["s"]),
            helper.make_node("Mul", ["s", "scale"], ["out"]),  # scale: from the main graph
            helper.make_node("Shape", ["x"], ["shape"]),
        ],
        "map_body",
        [
            helper.make_tensor_value_info("x", F, ["n"]),
            helper.make_tensor_value_info("y", F, ["n"]),
            helper.make_tensor_value_info("bias", F, [1]),
        ],
        [
            helper.make_tensor_value_info("out", F, ["n"]),
            helper.make_tensor_value_info("shape", I64, [1]),
        ],
    )
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["xs"]),
        helper.make_node("SequenceConstruct", ["b", "a"], ["ys"]),
        helper.make_node("SequenceMap", ["xs", "ys", "bias"], ["outs", "shapes"], body=body),
        helper.make_node("ConcatFromSequence", ["outs"], ["cat"], axis=0),
        helper.make_node("ConcatFromSequence", ["shapes"], ["dims"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "seqmap",
        [
            helper.make_tensor_value_info("a", F, [3]),
            helper.make_tensor_value_info("b", F, [3]),
            helper.make_tensor_value_info("bias", F, [1]),
            helper.make_tensor_value_info("scale", F, [1]),
        ],
        [
            helper.make_tensor_value_info("cat", F, [6]),
            helper.make_tensor_value_info("dims", I64, [2]),
        ],
    )
    feeds = {
        "a": np.array([1.0, 2.0, 3.0], np.float32),
        "b": np.array([10.0, 20.0, 30.0], np.float32),
        "bias": np.array([0.5], np.float32),
        "scale": np.array([2.0], np.float32),
    }
    cat, dims = _compare(_model(graph, 17), feeds)
    np.testing.assert_allclose(cat, np.array([23, 45, 67, 23, 45, 67], np.float32))
    np.testing.assert_array_equal(dims, [3, 3])


class _FlakyMul(onnxep.Provider):
    """Claims Mul and fails whenever it runs: its nodes inside a body must fall back."""

    name = "FlakyMulExecutionProvider"
    kernels = onnxep.KernelRegistry()
    calls = 0


@_FlakyMul.kernels.register("Mul", versions=(7, 13, 14))
def _broken_mul(a: Any, b: Any) -> Any:
    _FlakyMul.calls += 1
    raise ValueError("flaky device lost")


def test_body_segment_failing_at_run_time_falls_back_with_a_warning() -> None:
    model = _loop_model(13, with_m=True, with_cond=True, stop_after=None)
    feeds = {
        "x": np.array([1.0, 2.0, 3.0], np.float32),
        "a": np.zeros(3, np.float32),
        "M": np.array(3, np.int64),
        "cond": np.array(True),
    }
    session = onnxep.InferenceSession(model, providers=[_FlakyMul(), "reference"])
    with pytest.warns(RuntimeWarning, match="FlakyMul.*control-flow body.*flaky device lost"):
        acc, rows, squares = session.run(None, feeds)
    assert _FlakyMul.calls == 1  # rebuilt once, then the reference path ran every iteration
    np.testing.assert_allclose(acc, [3.0, 6.0, 9.0])
    np.testing.assert_allclose(squares, [0.0, 1.0, 4.0])
    assert rows.shape == (3, 3)
    session.run(None, feeds)  # the rebuilt body is kept: no second warning, no second call
    assert _FlakyMul.calls == 1
