"""Partitioning, transfers, fallback and the placement report, on the fake device."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest
from fake_device import (
    CALLS,
    CompileFailsProvider,
    FakeDeviceProvider,
    IslandShyProvider,
    OtherDeviceProvider,
    RunFailsProvider,
    UnavailableProvider,
)
from graphs import model, node

import onnxep
from onnxep.graph import graph_from_proto
from onnxep.partition import partition

FAKE = FakeDeviceProvider.name
REF = "ReferenceExecutionProvider"


@pytest.fixture(autouse=True)
def _providers():
    for cls in (
        FakeDeviceProvider,
        OtherDeviceProvider,
        IslandShyProvider,
        CompileFailsProvider,
        RunFailsProvider,
        UnavailableProvider,
    ):
        onnxep.register_provider(cls)
    CALLS.clear()
    FakeDeviceProvider.uploads = FakeDeviceProvider.downloads = 0
    yield
    for cls in (
        FakeDeviceProvider,
        OtherDeviceProvider,
        IslandShyProvider,
        CompileFailsProvider,
        RunFailsProvider,
        UnavailableProvider,
    ):
        onnxep.unregister_provider(cls.name)


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def mixed_model():
    """Add -> Sigmoid (host only) -> Mul -> Relu: device, host, device, device."""
    return model(
        [
            node("Add", ["x", "x"], ["a"]),
            node("Sigmoid", ["a"], ["s"]),
            node("Mul", ["s", "a"], ["m"]),
            node("Relu", ["m"], ["y"]),
        ],
        {"x": [2, 3]},
        ["y"],
    )


def expected_mixed(x):
    a = x + x
    return np.maximum(1 / (1 + np.exp(-a)) * a, 0)


def test_priority_order_first_provider_wins():
    session = onnxep.InferenceSession(mixed_model(), providers=[OtherDeviceProvider.name, FAKE])
    assert session.assignment("a") == OtherDeviceProvider.name
    assert session.assignment("s") == REF
    assert session.get_providers() == [OtherDeviceProvider.name, FAKE, REF]
    session = onnxep.InferenceSession(mixed_model(), providers=[FAKE, OtherDeviceProvider.name])
    assert session.assignment("a") == FAKE


def test_mixed_placement_runs_correctly_and_reports_reasons():
    session = onnxep.InferenceSession(mixed_model(), providers=[FAKE])
    x = _x(2, 3)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, expected_mixed(x), rtol=1e-6)
    assert [session.assignment(n) for n in "asmy"] == [FAKE, REF, FAKE, FAKE]
    assert CALLS == ["Add", "Mul", "Relu"]
    report = session.explain().to_dict()
    (fell,) = report["fallback"]
    assert fell["node"] == "s"
    assert fell["declined_by"] == [{"provider": FAKE, "reason": "no kernel for Sigmoid"}]
    assert "no kernel for Sigmoid" in str(session.explain())


def test_transfers_deduplicated_per_value_and_device():
    session = onnxep.InferenceSession(mixed_model(), providers=[FAKE])
    session.run(None, {"x": _x(2, 3)})
    transfers = session.explain().to_dict()["transfers"]
    # x up; a down (once, though Sigmoid reads it); s up; y down.  a is already on the device.
    assert transfers["per_run"] == 4
    assert transfers["last_run_count"] == 4
    assert transfers["last_run_bytes"] == 4 * 6 * 4
    assert FakeDeviceProvider.uploads == 2 and FakeDeviceProvider.downloads == 2


def test_shared_input_copied_once_for_many_consumers():
    m = model(
        [
            node("Add", ["x", "x"], ["a"]),
            node("Mul", ["x", "a"], ["b"]),
            node("Sub", ["b", "x"], ["y"]),
        ],
        {"x": [4]},
        ["y"],
    )
    session = onnxep.InferenceSession(m, providers=[FAKE])
    x = _x(4)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x * (x + x) - x, rtol=1e-6)
    assert session.plan.stats.count == 2  # x up once, y down once
    assert len(session.explain().to_dict()["segments"]) == 1


def test_constants_uploaded_once_at_build_and_host_inputs_stay_on_host():
    w = _x(3, 4)
    m = model(
        [node("MatMul", ["x", "w"], ["h"]), node("Reshape", ["h", "shape"], ["y"])],
        {"x": [2, 3]},
        ["y"],
        {"w": w, "shape": np.array([4, 2], dtype=np.int64)},
    )
    session = onnxep.InferenceSession(m, providers=[FAKE])
    x = _x(2, 3)
    for _ in range(3):
        np.testing.assert_allclose(session.run(None, {"x": x})[0], (x @ w).reshape(4, 2), rtol=1e-5)
    assert FakeDeviceProvider.uploads == 1 + 3  # w once at build; x once per run
    report = session.explain().to_dict()["transfers"]
    assert report["constants_uploaded"] == 1 and report["constant_bytes"] == w.nbytes
    assert session.assignment("y") == FAKE


def test_no_cycle_when_merging_would_create_one():
    # a (dev) -> s (host) -> c (dev), and a -> c directly: a and c must not share a segment
    m = model(
        [
            node("Add", ["x", "x"], ["a"]),
            node("Sigmoid", ["a"], ["s"]),
            node("Mul", ["a", "s"], ["c"]),
            node("Neg", ["x"], ["n"]),
            node("Add", ["c", "n"], ["y"]),
        ],
        {"x": [3]},
        ["y"],
    )
    session = onnxep.InferenceSession(m, providers=[FAKE])
    segments = session.explain().to_dict()["segments"]
    owner = {n: s["index"] for s in segments for n in s["nodes"]}
    assert owner["a"] != owner["c"]
    assert owner["n"] in (owner["a"], owner["c"])  # independent node merged, not isolated
    x = _x(3)
    a = x + x
    expected = a * (1 / (1 + np.exp(-a))) + (-x)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-6)


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_partition_acyclic_and_correct(seed):
    rng = np.random.default_rng(seed)
    ops = ["Add", "Mul", "Sigmoid", "Sub", "Tanh"]  # Sigmoid and Tanh only on the host
    names, nodes = ["x"], []
    for i in range(int(rng.integers(4, 16))):
        op = ops[rng.integers(len(ops))]
        args = [
            names[rng.integers(len(names))] for _ in range(1 if op in ("Sigmoid", "Tanh") else 2)
        ]
        nodes.append(node(op, args, [f"v{i}"]))
        names.append(f"v{i}")
    m = model(nodes, {"x": [5]}, [names[-1], names[len(names) // 2]])
    graph = graph_from_proto(m.graph, {"": 17})
    parts = partition(graph, [FakeDeviceProvider(), onnxep.reference.ReferenceProvider()])
    seen: set[str] = {"x"}
    for seg in parts.segments:  # execution order: every input defined before the segment
        assert all(i in seen for i in seg.inputs), "segment order has a cycle"
        seen.update(o for n in seg.nodes for o in n.outputs)
    x = _x(5)
    got = onnxep.InferenceSession(m, providers=[FAKE]).run(None, {"x": x})
    want = onnxep.InferenceSession(m, providers=["reference"]).run(None, {"x": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_provider_declines_small_islands():
    m = model(
        [
            node("Add", ["x", "x"], ["a"]),
            node("Sigmoid", ["a"], ["s"]),
            node("Mul", ["s", "s"], ["m"]),
            node("Relu", ["m"], ["y"]),
        ],
        {"x": [3]},
        ["y"],
    )
    session = onnxep.InferenceSession(m, providers=[IslandShyProvider.name])
    assert session.assignment("a") == REF  # alone: declined
    assert session.assignment("m") == session.assignment("y") == IslandShyProvider.name
    reasons = {f["node"]: f["declined_by"] for f in session.explain().to_dict()["fallback"]}
    assert "island of 1 node(s)" in reasons["a"][0]["reason"]


def test_strict_mode_refuses_fallback_and_names_nodes():
    options = onnxep.SessionOptions()
    options.disable_cpu_ep_fallback = 1
    with pytest.raises(onnxep.InvalidArgument, match=r"1 node\(s\) would fall back.*s \(Sigmoid\)"):
        onnxep.InferenceSession(mixed_model(), options, providers=[FAKE])
    options = onnxep.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    ok = model([node("Add", ["x", "x"], ["y"])], {"x": [2]}, ["y"])
    onnxep.InferenceSession(ok, options, providers=[FAKE])  # nothing falls back: fine


def test_compile_failure_falls_back_with_warning():
    with pytest.warns(
        RuntimeWarning, match="CompileFailsExecutionProvider failed to compile.*simulated"
    ):
        session = onnxep.InferenceSession(mixed_model(), providers=[CompileFailsProvider.name])
    assert {session.assignment(n) for n in "asmy"} == {REF}
    x = _x(2, 3)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected_mixed(x), rtol=1e-6)


def test_run_failure_rebuilds_on_next_provider_with_warning():
    session = onnxep.InferenceSession(mixed_model(), providers=[RunFailsProvider.name])
    x = _x(2, 3)
    with pytest.warns(
        RuntimeWarning, match="RunFailsExecutionProvider failed while running.*device fault"
    ):
        (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, expected_mixed(x), rtol=1e-6)
    assert session.assignment("y") == REF
    runs = RunFailsProvider.runs
    session.run(None, {"x": x})  # no second failure: the plan was rebuilt
    assert RunFailsProvider.runs == runs


def test_log_severity_error_silences_fallback_warnings():
    options = onnxep.SessionOptions()
    options.log_severity_level = 3  # errors only, as onnxruntime scripts set it
    x = _x(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        onnxep.InferenceSession(mixed_model(), options, providers=[CompileFailsProvider.name])
        session = onnxep.InferenceSession(mixed_model(), options, providers=[RunFailsProvider.name])
        np.testing.assert_allclose(session.run(None, {"x": x})[0], expected_mixed(x), rtol=1e-6)
    onnxep.set_default_logger_severity(4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            onnxep.InferenceSession(mixed_model(), providers=[CompileFailsProvider.name])
    finally:
        onnxep.set_default_logger_severity(2)


def test_disable_fallback_lets_a_run_failure_through():
    session = onnxep.InferenceSession(mixed_model(), providers=[RunFailsProvider.name])
    session.disable_fallback()
    with pytest.raises(onnxep.Fail, match="simulated device fault"):
        session.run(None, {"x": _x(2, 3)})
    session.enable_fallback()
    with pytest.warns(RuntimeWarning, match="failed while running"):
        session.run(None, {"x": _x(2, 3)})
    assert session.assignment("y") == REF


def test_unavailable_provider_warns_with_reason():
    with pytest.warns(RuntimeWarning, match="no fake accelerator is plugged in"):
        session = onnxep.InferenceSession(mixed_model(), providers=[UnavailableProvider.name, FAKE])
    assert session.get_providers() == [FAKE, REF]


def test_onnxruntime_names_and_aliases():
    m = mixed_model()
    assert onnxep.InferenceSession(m, providers=["CPUExecutionProvider"]).get_providers()[-1] == REF
    assert onnxep.InferenceSession(m, providers=["REFERENCE"]).get_providers() == [REF]
    assert onnxep.InferenceSession(m, providers=["fakedevice"]).get_providers() == [FAKE, REF]
    session = onnxep.InferenceSession(m, providers=[(FAKE, {"level": 3})])
    assert session.get_provider_options()[FAKE] == {"level": "3"}
    with pytest.raises(onnxep.InvalidArgument, match="unknown provider 'Nope'"):
        onnxep.InferenceSession(m, providers=["Nope"])


def test_subgraph_bodies_are_partitioned_too():
    from onnx import TensorProto, helper

    then_branch = helper.make_graph(
        [node("Add", ["x", "x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [node("Sigmoid", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    m = model(
        [node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
        {"x": [3]},
        ["y"],
    )
    m.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    session = onnxep.InferenceSession(m, providers=[FAKE])
    x = _x(3)
    np.testing.assert_allclose(session.run(None, {"x": x, "c": np.array(True)})[0], x + x)
    assert CALLS == ["Add"]  # the then-branch's Add ran on the fake device
    np.testing.assert_allclose(
        session.run(None, {"x": x, "c": np.array(False)})[0], 1 / (1 + np.exp(-x)), rtol=1e-6
    )


def test_profiling_writes_chrome_trace_with_providers(tmp_path):
    options = onnxep.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace_")
    session = onnxep.InferenceSession(mixed_model(), options, providers=[FAKE])
    session.run(None, {"x": _x(2, 3)})
    path = session.end_profiling()
    events = json.loads(pathlib.Path(path).read_text())
    nodes = [e for e in events if e["cat"] == "Node"]
    assert {e["args"]["provider"] for e in nodes} == {FAKE, REF}
    assert {e["args"]["op_name"] for e in nodes} >= {"Add", "Sigmoid", "Mul", "Relu"}
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)


def test_assignment_info_and_annotated_model():
    from onnxep.explain import annotate_model

    session = onnxep.InferenceSession(mixed_model(), providers=[FAKE])
    info = session.get_provider_graph_assignment_info()
    assert {e["ep_name"]: len(e["nodes"]) for e in info} == {FAKE: 3, REF: 1}
    annotated = annotate_model(mixed_model(), session.explain())
    props = {n.name: {p.key: p.value for p in n.metadata_props} for n in annotated.graph.node}
    assert props["s"]["onnxep.provider"] == REF and props["y"]["onnxep.provider"] == FAKE


def _light(name: str) -> pathlib.Path:
    import onnx

    return pathlib.Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx"


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet"])
def test_light_models_with_mixed_placement_match_reference(name):
    path = str(_light(name))
    reference = onnxep.InferenceSession(path, providers=["reference"])
    (arg,) = reference.get_inputs()
    x = np.random.default_rng(0).random(arg.shape).astype(np.float32)
    (want,) = reference.run(None, {arg.name: x})
    mixed = onnxep.InferenceSession(path, providers=[FAKE])
    (got,) = mixed.run(None, {arg.name: x})
    placed = mixed.explain().to_dict()["nodes_per_provider"]
    assert placed[FAKE] > 10 and placed[REF] > 10  # really mixed
    assert mixed.plan.stats.count > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_declines_by_earlier_providers_are_reported():
    from fake_device import kernels as fake_kernels

    add_only = onnxep.KernelRegistry()
    add_only.add(fake_kernels.lookup(onnxep.resolve_key("", "Add", 17)))

    class AddOnly(FakeDeviceProvider):
        name = "AddOnlyExecutionProvider"
        kernels = add_only

    onnxep.register_provider(AddOnly)
    try:
        session = onnxep.InferenceSession(mixed_model(), providers=["addonly", FAKE])
    finally:
        onnxep.unregister_provider(AddOnly.name)
    report = session.explain().to_dict()
    declined = {d["node"]: d for d in report["declined"]}
    assert declined["m"]["ran_on"] == FAKE
    assert declined["m"]["declined_by"] == [
        {"provider": AddOnly.name, "reason": "no kernel for Mul"}
    ]
    assert "m (Mul-14) -> FakeDeviceExecutionProvider" in str(session.explain())
    x = _x(2, 3)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected_mixed(x), rtol=1e-6)


def test_input_that_fails_on_every_provider_keeps_the_plan():
    """A feed the model cannot take fails on the device and again on the reference path:
    the error reaches the caller, and the next (valid) run still uses the device."""
    m = model(
        [node("Relu", ["x"], ["r"]), node("Reshape", ["r", "shape"], ["y"])],
        {"x": ["n"]},
        ["y"],
        {"shape": np.array([2, 3], np.int64)},
    )
    session = onnxep.InferenceSession(m, providers=[FAKE])
    assert session.assignment("y") == FAKE
    with (
        pytest.warns(RuntimeWarning, match="failed while running"),
        pytest.raises(onnxep.Fail, match=r"node 'y' \(Reshape\).*cannot be reshaped"),
    ):
        session.run(None, {"x": _x(7)})
    assert session.assignment("y") == FAKE
    (y,) = session.run(None, {"x": _x(6)})
    np.testing.assert_allclose(y, np.maximum(_x(6), 0).reshape(2, 3))
