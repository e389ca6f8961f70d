"""onnxruntime's Python API, side by side with onnxruntime itself."""

from __future__ import annotations

import inspect
import json
import pathlib
import re
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxep

ort = pytest.importorskip("onnxruntime", reason="the API is compared with onnxruntime's")
REFERENCE = "ReferenceExecutionProvider"


def _info(name: str, elem: int, shape: list[Any] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _typed_model() -> onnx.ModelProto:
    """Many input/output types and dims: symbolic, unknown, fixed, scalar; an overridable w."""
    inputs = [
        _info("x", TensorProto.FLOAT, ["batch", None, 4]),
        _info("i", TensorProto.INT32, []),
        _info("u", TensorProto.UINT8, [2, "k"]),
        _info("d", TensorProto.DOUBLE, [1]),
        _info("s", TensorProto.STRING, [3]),
        _info("w", TensorProto.FLOAT, [4]),
    ]
    float_seq = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    )
    outputs = [
        helper.make_value_info("sq", float_seq),
        _info("xi", TensorProto.INT32, None),
        _info("o", TensorProto.FLOAT, None),
        _info("h", TensorProto.FLOAT16, None),
        _info("b", TensorProto.BOOL, None),
        _info("s2", TensorProto.STRING, None),
        _info("n", TensorProto.INT64, None),
    ]
    nodes = [
        helper.make_node("SequenceConstruct", ["x", "x"], ["sq"]),
        helper.make_node("Identity", ["i"], ["xi"]),
        helper.make_node("Add", ["x", "w"], ["o"]),
        helper.make_node("Cast", ["o"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Greater", ["d", "d"], ["b"]),
        helper.make_node("Identity", ["s"], ["s2"]),
        helper.make_node("Shape", ["u"], ["n"]),
    ]
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    graph = helper.make_graph(nodes, "typed", inputs, outputs, [w], doc_string="graph doc")
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18)],
        producer_name="onnxep-tests",
        producer_version="1.2",
        domain="org.onnxep.tests",
        model_version=7,
        doc_string="model doc",
    )
    helper.set_model_props(model, {"author": "me", "licence": "none"})
    model.ir_version = 8
    return model


TYPED_FEEDS = {
    "x": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    "i": np.array(3, dtype=np.int32),
    "u": np.ones((2, 5), dtype=np.uint8),
    "d": np.ones(1),
    "s": np.array(["a", "bb", "c"], dtype=object),
}


@pytest.fixture(scope="module")
def pair() -> tuple[Any, onnxep.InferenceSession]:
    """onnxruntime's and onnxep's sessions on :func:`_typed_model`."""
    data = _typed_model().SerializeToString()
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return theirs, onnxep.InferenceSession(data, providers=[REFERENCE])


def _args(args: list[Any]) -> list[tuple[str, Any, str]]:
    return [(a.name, a.shape, a.type) for a in args]


# --- constructor, getters --------------------------------------------------------------------
def test_constructor_takes_onnxruntimes_parameters_in_order(tmp_path: pathlib.Path) -> None:
    ours = list(inspect.signature(onnxep.InferenceSession).parameters)
    theirs = list(inspect.signature(ort.InferenceSession).parameters)
    assert (
        ours[:4] == theirs[:4] == ["path_or_bytes", "sess_options", "providers", "provider_options"]
    )
    path = tmp_path / "typed.onnx"
    onnx.save(_typed_model(), path)
    session = onnxep.InferenceSession(str(path), onnxep.SessionOptions(), [REFERENCE], [{}])
    assert session.get_providers() == [REFERENCE]


@pytest.mark.filterwarnings("ignore::UserWarning")  # onnxruntime: "w appears in graph inputs"
def test_inputs_outputs_and_overridable_initializers_match_onnxruntime(pair: Any) -> None:
    theirs, ours = pair
    assert _args(ours.get_inputs()) == _args(theirs.get_inputs())
    assert _args(ours.get_outputs()) == _args(theirs.get_outputs())
    assert _args(ours.get_overridable_initializers()) == _args(
        theirs.get_overridable_initializers()
    )
    x = ours.get_inputs()[0]
    assert (x.name, x.shape, x.type) == ("x", ["batch", None, 4], "tensor(float)")
    assert ours.get_overridable_initializers()[0].name == "w"


def test_run_returns_what_onnxruntime_returns(pair: Any) -> None:
    theirs, ours = pair
    expected = theirs.run(None, TYPED_FEEDS)
    got = ours.run(None, TYPED_FEEDS)
    assert len(got) == len(expected)
    for name, a, b in zip([o.name for o in ours.get_outputs()], got, expected):
        assert type(a) is type(b), name
        if isinstance(b, list):
            assert len(a) == len(b)
            a, b = np.stack(a), np.stack(b)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_none_or_empty_output_names_mean_all_and_a_subset_keeps_its_order(pair: Any) -> None:
    theirs, ours = pair
    every = [o.name for o in ours.get_outputs()]
    for names in (None, []):
        assert len(ours.run(names, TYPED_FEEDS)) == len(every)
    h, xi, o = ours.run(["h", "xi", "o"], TYPED_FEEDS)
    assert (h.dtype, xi.dtype, o.dtype) == (np.float16, np.int32, np.float32)
    th, txi, to = theirs.run(["h", "xi", "o"], TYPED_FEEDS)
    np.testing.assert_array_equal(xi, txi)
    np.testing.assert_array_equal(h, th)
    np.testing.assert_array_equal(o, to)


def test_an_overridable_initializer_may_be_fed(pair: Any) -> None:
    theirs, ours = pair
    feeds = {**TYPED_FEEDS, "w": np.full(4, -1.0, np.float32)}
    (o,) = ours.run(["o"], feeds)
    np.testing.assert_array_equal(o, TYPED_FEEDS["x"] - 1)
    np.testing.assert_array_equal(o, theirs.run(["o"], feeds)[0])


def test_model_metadata_matches_onnxruntime(pair: Any) -> None:
    theirs, ours = pair
    fields = ("producer_name", "graph_name", "domain", "description", "graph_description")
    fields += ("version", "custom_metadata_map")
    ort_meta, meta = theirs.get_modelmeta(), ours.get_modelmeta()
    for field in fields:
        assert getattr(meta, field) == getattr(ort_meta, field), field
    assert meta.custom_metadata_map == {"author": "me", "licence": "none"}
    assert (meta.version, meta.graph_name) == (7, "typed")


# --- providers -------------------------------------------------------------------------------
def test_available_and_all_providers() -> None:
    available = onnxep.get_available_providers()
    assert available[-1] == REFERENCE
    assert set(available) <= set(onnxep.get_all_providers())
    assert len(set(available)) == len(available)


def test_get_providers_and_provider_options() -> None:
    model = _typed_model().SerializeToString()
    session = onnxep.InferenceSession(model, providers=[(REFERENCE, {"level": 3, "on": True})])
    assert session.get_providers() == [REFERENCE]
    assert session.get_provider_options() == {REFERENCE: {"level": "3", "on": "True"}}
    plain = onnxep.InferenceSession(model, providers=["reference"], provider_options=[{"a": 1}])
    assert plain.get_provider_options() == {REFERENCE: {"a": "1"}}
    chain = onnxep.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert chain.get_providers()[-1] == REFERENCE
    assert set(chain.get_providers()) <= set(onnxep.get_available_providers())
    assert list(chain.get_provider_options()) == chain.get_providers()


def test_provider_arguments_that_do_not_fit_are_refused() -> None:
    model = _typed_model().SerializeToString()
    with pytest.raises(onnxep.InvalidArgument, match="provider_options has 2 entries"):
        onnxep.InferenceSession(model, providers=["reference"], provider_options=[{}, {}])
    with pytest.raises(onnxep.InvalidArgument, match="unknown provider 'NoSuchProvider'"):
        onnxep.InferenceSession(model, providers=["NoSuchProvider"])
    with pytest.warns(RuntimeWarning, match="TensorrtExecutionProvider"):
        skipped = onnxep.InferenceSession(
            model, providers=["TensorrtExecutionProvider", "reference"]
        )
    assert skipped.get_providers() == [REFERENCE]


# --- options ---------------------------------------------------------------------------------
ORT_DEFAULTS = (
    "graph_optimization_level", "intra_op_num_threads", "inter_op_num_threads",
    "execution_mode", "log_severity_level", "log_verbosity_level", "logid", "enable_profiling",
    "profile_file_prefix", "optimized_model_filepath", "enable_cpu_mem_arena",
    "enable_mem_pattern", "enable_mem_reuse", "use_deterministic_compute",
)  # fmt: skip


def test_session_options_have_onnxruntimes_attributes_and_defaults() -> None:
    ours, theirs = onnxep.SessionOptions(), ort.SessionOptions()
    for name in ORT_DEFAULTS:
        assert getattr(ours, name) == getattr(theirs, name), name
    level = onnxep.GraphOptimizationLevel
    assert [int(level.ORT_DISABLE_ALL), int(level.ORT_ENABLE_ALL)] == [
        int(ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
        int(ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
    ]
    ours.add_session_config_entry("session.some_key", "1")
    theirs.add_session_config_entry("session.some_key", "1")
    assert ours.get_session_config_entry("session.some_key") == "1"
    assert theirs.get_session_config_entry("session.some_key") == "1"


def test_session_options_are_kept_and_threads_reach_the_providers() -> None:
    options = onnxep.SessionOptions()
    options.graph_optimization_level = onnxep.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = onnxep.InferenceSession(_typed_model(), options, providers=["reference"])
    assert session.get_session_options() is options
    assert all(p.threads == 2 for p in session.providers)
    assert session.get_profiling_start_time_ns() == 0
    assert session.end_profiling() == ""


def test_run_options_have_onnxruntimes_attributes(pair: Any) -> None:
    theirs, ours = pair
    for module, session in ((ort, theirs), (onnxep, ours)):
        run_options = module.RunOptions()
        run_options.log_severity_level = 3
        run_options.logid = "tagged"
        run_options.add_run_config_entry("run.key", "v")
        assert run_options.get_run_config_entry("run.key") == "v"
        assert run_options.terminate is False
        assert run_options.only_execute_path_to_fetches is False
        (o,) = session.run(["o"], TYPED_FEEDS, run_options)
        assert o.shape == (2, 3, 4)


def test_profiling_writes_chrome_trace_with_the_provider_of_each_node(
    tmp_path: pathlib.Path,
) -> None:
    options = onnxep.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace_")
    session = onnxep.InferenceSession(_typed_model(), options, providers=["reference"])
    assert session.get_profiling_start_time_ns() > 0
    for _ in range(2):
        session.run(None, TYPED_FEEDS)
    path = pathlib.Path(session.end_profiling())
    assert path.parent == tmp_path and path.name.startswith("trace_")
    events = json.loads(path.read_text())
    assert isinstance(events, list)
    for event in events:
        assert {"cat", "name", "ph", "ts", "dur", "pid", "tid", "args"} <= set(event), event
        assert event["ph"] == "X" and event["dur"] >= 0
    nodes = [e for e in events if e["cat"] == "Node"]
    assert len(nodes) == 2 * len(session.plan.graph.nodes)
    assert {e["args"]["provider"] for e in nodes} == {REFERENCE}
    assert {e["args"]["op_name"] for e in nodes} >= {"Add", "Cast", "Shape"}
    assert all(e["name"].endswith("_kernel_time") for e in nodes)  # onnxruntime's naming
    sessions = [e["name"] for e in events if e["cat"] == "Session"]
    assert sessions.count("model_run") == 2 and "session_initialization" in sessions


def test_end_profiling_stops_profiling_and_names_files_as_onnxruntime(
    tmp_path: pathlib.Path,
) -> None:
    names = []
    for module in (ort, onnxep):
        options = module.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / module.__name__)
        session = module.InferenceSession(
            _typed_model().SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        session.run(["o"], TYPED_FEEDS)
        first = pathlib.Path(session.end_profiling())
        session.run(["o"], TYPED_FEEDS)
        assert session.end_profiling() == "", module.__name__  # profiling has ended
        names.append(first.name.removeprefix(module.__name__))
        assert len([e for e in json.loads(first.read_text()) if e["name"] == "model_run"]) == 1
    # "_2024-01-31_12-00-00_123.json": prefix, "_", date, time, milliseconds
    pattern = r"_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{3}\.json"
    assert all(re.fullmatch(pattern, name) for name in names), names


@pytest.mark.filterwarnings("ignore::UserWarning")  # onnxruntime: "w appears in graph inputs"
def test_list_feeds_take_the_inputs_element_type(pair: Any) -> None:
    theirs, ours = pair
    feeds = {**TYPED_FEEDS, "x": TYPED_FEEDS["x"].tolist(), "d": [1], "u": [[1, 2], [3, 4]]}
    feeds["s"] = ["a", "bb", "c"]
    for a, b in zip(
        ours.run(["o", "b", "n", "s2"], feeds), theirs.run(["o", "b", "n", "s2"], feeds)
    ):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    with pytest.raises(onnxep.InvalidArgument, match=r"Actual: \(tensor\(double\)\)"):
        ours.run(["xi"], {**TYPED_FEEDS, "u": [[0.5, 1.5]]})  # no silent float-to-int cast


# --- the same script on both -----------------------------------------------------------------
SCRIPT = """
import numpy as np
import {module} as ort

options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta()
inputs = [(i.name, i.shape, i.type) for i in session.get_inputs()]
outputs = [(o.name, o.shape, o.type) for o in session.get_outputs()]
rng = np.random.default_rng(0)
feed = {{session.get_inputs()[0].name: rng.standard_normal((3, 8)).astype(np.float32)}}
run_options = ort.RunOptions()
run_options.log_severity_level = 3
probs, label = session.run(None, feed, run_options)
(label_only,) = session.run([session.get_outputs()[1].name], feed)
result = dict(
    inputs=inputs, outputs=outputs, probs=probs, label=label, label_only=label_only,
    meta=(meta.producer_name, meta.graph_name, meta.version, meta.custom_metadata_map),
    available="CPUExecutionProvider" in ort.get_available_providers()
    or "ReferenceExecutionProvider" in ort.get_available_providers(),
)
"""


def _classifier(path: pathlib.Path) -> None:
    rng = np.random.default_rng(1)
    weights = [
        helper.make_tensor("W", TensorProto.FLOAT, [8, 5], rng.standard_normal(40).tolist()),
        helper.make_tensor("B", TensorProto.FLOAT, [5], rng.standard_normal(5).tolist()),
    ]
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
        helper.make_node("Relu", ["logits"], ["act"]),
        helper.make_node("Softmax", ["act"], ["probabilities"], axis=-1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "classifier", [_info("features", TensorProto.FLOAT, ["batch", 8])],
        [_info("probabilities", TensorProto.FLOAT, ["batch", 5]),
         _info("label", TensorProto.INT64, ["batch"])],
        weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="t")
    helper.set_model_props(model, {"task": "classify"})
    model.ir_version = 8
    onnx.save(model, path)


def test_an_onnxruntime_script_runs_unchanged_on_onnxep(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "classifier.onnx"
    _classifier(path)
    results = {}
    for module in ("onnxruntime", "onnxep"):
        scope: dict[str, Any] = {"path": str(path)}
        exec(SCRIPT.format(module=module), scope)
        results[module] = scope["result"]
    theirs, ours = results["onnxruntime"], results["onnxep"]
    for key in ("inputs", "outputs", "meta", "available"):
        assert ours[key] == theirs[key], key
    assert ours["outputs"][1] == ("label", ["batch"], "tensor(int64)")
    for key in ("label", "label_only"):
        np.testing.assert_array_equal(ours[key], theirs[key])
        assert ours[key].dtype == np.int64
    np.testing.assert_allclose(ours["probs"], theirs["probs"], rtol=1e-5, atol=1e-6)
