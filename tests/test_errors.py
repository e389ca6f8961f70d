"""Errors carry onnxruntime's class names and say what is wrong: feeds, files, bytes, ops, runs."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import onnxep

ort = pytest.importorskip("onnxruntime", reason="error classes are compared with onnxruntime's")
ORT_STATE = ort.capi.onnxruntime_pybind11_state
SQUEEZENET = pathlib.Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
ERRORS = (
    onnxep.InvalidArgument,
    onnxep.NoSuchFile,
    onnxep.InvalidProtobuf,
    onnxep.InvalidGraph,
    onnxep.NotImplemented,
    onnxep.Fail,
)
FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _session(source: Any) -> onnxep.InferenceSession:
    """A session on the reference provider alone: these tests are about loading, not kernels."""
    return onnxep.InferenceSession(source, providers=["ReferenceExecutionProvider"])


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[str],
    opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
    )
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or {"": 17}).items()]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def _two_inputs() -> onnx.ModelProto:
    """y = x + b, z = Relu(x); x float ['batch', 3], b float [3]."""
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, [3]),
    ]
    nodes = [helper.make_node("Add", ["x", "b"], ["y"]), helper.make_node("Relu", ["x"], ["z"])]
    return _model(nodes, inputs, ["y", "z"])


@pytest.fixture(scope="module")
def session() -> onnxep.InferenceSession:
    """A session on :func:`_two_inputs`."""
    return _session(_two_inputs())


@pytest.fixture(scope="module")
def ort_session() -> Any:
    """onnxruntime's session on the same model."""
    return ort.InferenceSession(_two_inputs().SerializeToString())


GOOD = {"x": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}


def test_every_error_is_a_runtime_error_with_onnxruntimes_name_and_code() -> None:
    for cls in (*ERRORS, onnxep.EPFail):
        assert issubclass(cls, onnxep.OnnxepError)
        assert issubclass(cls, RuntimeError)
        assert hasattr(ORT_STATE, cls.__name__), cls.__name__
        assert str(cls("detail")).startswith(f"[ONNXRuntimeError] : {cls.code} : detail")


# --- feeds -----------------------------------------------------------------------------------
FEED_ERRORS = [
    pytest.param({"x": GOOD["x"]}, [r"Required inputs \(\['b'\]\) are missing"], id="missing"),
    pytest.param({**GOOD, "q": GOOD["b"]}, ["Invalid input name", "'q'"], id="unknown-name"),
    pytest.param(
        {**GOOD, "x": GOOD["x"].astype(np.float64)},
        ["'x'", r"Actual: \(tensor\(double\)\)", r"expected: \(tensor\(float\)\)"],
        id="dtype",
    ),
    pytest.param(
        {**GOOD, "x": np.ones(3, np.float32)},
        ["Invalid rank for input: x", "Got: 1", "Expected: 2"],
        id="rank",
    ),
    pytest.param(
        {**GOOD, "x": np.ones((2, 4), np.float32)},
        ["invalid dimensions for input: x", "index: 1", "Got: 4", "Expected: 3"],
        id="fixed-dim",
    ),
    pytest.param({**GOOD, "x": {"not": "an array"}}, ["'x'", "dict"], id="not-an-array"),
]


@pytest.mark.parametrize(("feeds", "patterns"), FEED_ERRORS)
def test_bad_feeds_are_invalid_argument_naming_the_problem(
    session: onnxep.InferenceSession, ort_session: Any, feeds: dict[str, Any], patterns: list[str]
) -> None:
    with pytest.raises(onnxep.InvalidArgument) as err:
        session.run(None, feeds)
    for pattern in patterns:
        assert err.match(pattern), (pattern, str(err.value))
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime refuses it too
        ort_session.run(None, feeds)


def test_a_symbolic_dim_takes_any_size(session: onnxep.InferenceSession) -> None:
    for batch in (1, 5):
        y, _ = session.run(None, {**GOOD, "x": np.ones((batch, 3), np.float32)})
        assert y.shape == (batch, 3)


def test_unknown_output_name_is_invalid_argument(
    session: onnxep.InferenceSession, ort_session: Any
) -> None:
    with pytest.raises(onnxep.InvalidArgument, match="Invalid output name: 'nope'"):
        session.run(["y", "nope"], GOOD)
    with pytest.raises(ORT_STATE.InvalidArgument, match="Invalid output name"):
        ort_session.run(["y", "nope"], GOOD)


def test_output_names_as_a_string_or_feeds_not_a_dict_are_invalid_argument(
    session: onnxep.InferenceSession,
) -> None:
    with pytest.raises(onnxep.InvalidArgument, match="list of names"):
        session.run("y", GOOD)
    with pytest.raises(onnxep.InvalidArgument, match="input_feed must be a dict"):
        session.run(None, [GOOD["x"], GOOD["b"]])


# --- files and bytes ---------------------------------------------------------------------------
def test_missing_file_and_directory_are_no_such_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "absent.onnx"
    with pytest.raises(onnxep.NoSuchFile, match=r"absent\.onnx"):
        _session(str(missing))
    with pytest.raises(ORT_STATE.NoSuchFile):
        ort.InferenceSession(str(missing))
    with pytest.raises(onnxep.NoSuchFile, match="not a regular file"):
        _session(tmp_path)


@pytest.mark.parametrize(
    "data",
    [b"garbage", b"\x00" * 64, b"\xff" * 7, b"", b"\x08\x08"],
    ids=["text", "zeros", "ff", "empty", "ir-only"],
)
def test_garbage_bytes_are_invalid_protobuf(data: bytes) -> None:
    with pytest.raises(onnxep.InvalidProtobuf):
        _session(data)


def test_garbage_file_is_invalid_protobuf_naming_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x12\xff\xff\xff\xff\x0f" + b"junk" * 10)
    with pytest.raises(onnxep.InvalidProtobuf, match=r"junk\.onnx"):
        _session(path)


def _load_or_refuse(data: bytes) -> onnxep.InferenceSession | None:
    """A session when the bytes are a valid model; None when refused as they should be."""
    try:
        return _session(data)
    except (onnxep.InvalidProtobuf, onnxep.InvalidGraph):
        return None


def test_a_real_model_cut_anywhere_is_refused_cleanly() -> None:
    data = SQUEEZENET.read_bytes()
    assert _session(data).get_inputs()
    cuts = sorted({len(data) // 2, *range(0, len(data), len(data) // 13), len(data) - 1})
    for cut in cuts:
        assert _load_or_refuse(data[:cut]) is None, f"{cut} of {len(data)} bytes loaded"
    half = len(data) // 2
    with pytest.raises(ORT_STATE.InvalidProtobuf):
        ort.InferenceSession(data[:half])


@FUZZ
@given(st.integers(0, SQUEEZENET.stat().st_size - 1))
def test_fuzz_a_real_model_cut_at_random_points_is_refused(cut: int) -> None:
    assert _load_or_refuse(SQUEEZENET.read_bytes()[:cut]) is None


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    _load_or_refuse(data)


def _rich() -> onnx.ModelProto:
    """A model with an If (two subgraphs), a tensor attribute, an initializer and metadata."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    branch_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])
    then = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [], [branch_out])
    other = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["t"])], "else", [], [branch_out]
    )
    k = helper.make_tensor("kv", TensorProto.FLOAT, [3], [1.0, 1.0, 1.0])
    nodes = [
        helper.make_node("Constant", [], ["k"], value=k),
        helper.make_node("If", ["c"], ["i"], then_branch=then, else_branch=other, name="if0"),
        helper.make_node("Sub", ["i", "k"], ["s"]),
        helper.make_node("Softmax", ["s"], ["y"], axis=1),
    ]
    w = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    model = _model(nodes, [x, c], ["y"])
    model.graph.initializer.append(w)
    model.producer_name = "fuzz"
    helper.set_model_props(model, {"key": "value"})
    return model


SMALL = _rich().SerializeToString()


#: Single-byte edits of ``SMALL`` that crashed the loader before (KeyError, TypeError,
#: ValueError, UnicodeDecodeError from numpy_helper, the checker, shape inference, the plan).
CRASHED_BEFORE = [
    (11, 8), (14, 12), (36, 4), (40, 4), (40, 8), (40, 9), (40, 14), (40, 21), (40, 25),
    (40, 27), (40, 29), (55, 74), (80, 58), (99, 18), (101, 128), (102, 107), (129, 29),
    (297, 128),
]  # fmt: skip


@pytest.mark.parametrize(("position", "value"), CRASHED_BEFORE)
def test_edits_that_crashed_the_loader_are_refused_cleanly(position: int, value: int) -> None:
    data = bytearray(SMALL)
    data[position] = value
    _load_or_refuse(bytes(data))


@FUZZ
@given(
    st.integers(0, len(SMALL)),
    st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), max_size=4),
)
def test_fuzz_truncated_and_mutated_models_never_crash(
    cut: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(SMALL)
    for position, value in edits:
        data[position] = value
    session = _load_or_refuse(bytes(data[:cut]))
    if cut == len(SMALL) and not edits:
        assert session is not None
        assert [i.name for i in session.get_inputs()] == ["x", "c"]


# --- unknown ops -----------------------------------------------------------------------------
def _single(op: str, domain: str = "", opsets: dict[str, int] | None = None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    node = helper.make_node(op, ["x"], ["y"], domain=domain, name="the_node")
    return _model([node], [x], ["y"], opsets)


def test_unknown_op_in_ai_onnx_is_invalid_graph_naming_it() -> None:
    with pytest.raises(onnxep.InvalidGraph, match="Frobnicate"):
        _session(_single("Frobnicate"))
    with pytest.raises(ORT_STATE.InvalidGraph, match="Frobnicate"):
        ort.InferenceSession(_single("Frobnicate").SerializeToString())


def test_unknown_custom_domain_op_is_not_implemented_at_session_creation() -> None:
    model = _single("Frob", "com.acme", {"": 17, "com.acme": 1})
    with pytest.raises(onnxep.NotImplemented) as err:
        _session(model)
    assert "Frob" in str(err.value) and "com.acme" in str(err.value)
    assert "the_node" in str(err.value)


def test_domain_not_imported_is_invalid_graph() -> None:
    model = _single("Frob", "com.acme")
    with pytest.raises(onnxep.InvalidGraph, match=r"com\.acme"):
        _session(model)


# --- run-time failures -----------------------------------------------------------------------
def _reshape() -> onnx.ModelProto:
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None]),
        helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
    ]
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_it")
    return _model([node], inputs, ["y"])


def test_kernel_failing_at_run_time_is_fail_naming_node_and_op() -> None:
    session = _session(_reshape())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert session.run(None, {"x": x, "shape": np.array([3, 2])})[0].shape == (3, 2)
    with pytest.raises(onnxep.Fail) as err:
        session.run(None, {"x": x, "shape": np.array([4, 2])})
    message = str(err.value)
    assert "'reshape_it'" in message and "(Reshape)" in message, message
    assert "cannot be reshaped" in message  # the kernel's own words follow
    assert err.value.__cause__ is not None
    # the session still works after a failed run
    assert session.run(None, {"x": x, "shape": np.array([1, 6])})[0].shape == (1, 6)
    with pytest.raises(ORT_STATE.Fail, match="reshape_it"):  # same class as onnxruntime
        ort.InferenceSession(_reshape().SerializeToString()).run(
            None, {"x": x, "shape": np.array([4, 2])}
        )
