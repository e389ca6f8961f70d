"""The loader: sources, the checker, shape inference, local functions, opsets, external data."""

from __future__ import annotations

import builtins
import os
import pathlib
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxep
from onnxep.load import load_model

ort = pytest.importorskip("onnxruntime", reason="the loader is compared with onnxruntime")

X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
W = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]], dtype=np.float32)


def _session(source: Any) -> onnxep.InferenceSession:
    """A session on the reference provider alone: these tests are about loading, not kernels."""
    return onnxep.InferenceSession(source, providers=["ReferenceExecutionProvider"])


def _io(name: str, shape: list[Any] | None = None, elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, [2, 3] if shape is None else shape)


def _model(nodes: list[onnx.NodeProto], opset: int = 17, **graph: Any) -> onnx.ModelProto:
    """Inputs x, outputs y, both float [2, 3]; IR 8 so onnxruntime reads it too."""
    g = helper.make_graph(nodes, "g", graph.pop("inputs", [_io("x")]), [_io("y")], **graph)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _add_w() -> onnx.ModelProto:
    """y = Relu(x) + w, with w an initializer."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "w"], ["y"])]
    return _model(nodes, initializer=[numpy_helper.from_array(W, "w")])


def _run(source: Any) -> np.ndarray:
    session = _session(source)
    return session.run(None, {"x": X})[0]


EXPECTED = np.maximum(X, 0) + W


# --- sources --------------------------------------------------------------------------------
def test_loads_from_str_path_pathlib_bytes_bytearray_and_proto(tmp_path: pathlib.Path) -> None:
    model = _add_w()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    data = model.SerializeToString()
    for source in (str(path), path, data, bytearray(data), memoryview(data), model):
        np.testing.assert_allclose(_run(source), EXPECTED, err_msg=type(source).__name__)


def test_loading_leaves_the_callers_proto_untouched() -> None:
    model = _model([helper.make_node("Neg", ["r"], ["y"]), helper.make_node("Relu", ["x"], ["r"])])
    before = model.SerializeToString()
    _run(model)
    assert model.SerializeToString() == before


def test_other_sources_are_refused_with_invalid_argument() -> None:
    with pytest.raises(onnxep.InvalidArgument, match=r"path, bytes or onnx\.ModelProto"):
        _session(12345)


# --- checker and shape inference -------------------------------------------------------------
def test_checker_failure_is_invalid_graph_with_the_checkers_message() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])])
    with pytest.raises(onnx.checker.ValidationError) as checker:
        onnx.checker.check_model(model)
    first_line = str(checker.value).strip().splitlines()[0]
    with pytest.raises(onnxep.InvalidGraph) as ours:
        _session(model)
    assert first_line in str(ours.value)
    state = ort.capi.onnxruntime_pybind11_state
    with pytest.raises((state.Fail, state.InvalidGraph), match="Duplicate definition"):
        ort.InferenceSession(model.SerializeToString())  # onnxruntime refuses it as well


def test_an_output_of_unknown_rank_is_tolerated_but_later_checker_findings_are_not() -> None:
    unshaped = _io("y", shape=None)
    unshaped.type.tensor_type.ClearField("shape")
    ok = _model([helper.make_node("Relu", ["x"], ["y"])])
    ok.graph.output[0].CopyFrom(unshaped)
    np.testing.assert_allclose(_run(ok), np.maximum(X, 0))
    bad = _model([helper.make_node("Frobnicate", ["x"], ["y"])])
    bad.graph.output[0].CopyFrom(unshaped)
    with pytest.raises(onnxep.InvalidGraph, match="Frobnicate"):
        _session(bad)


def test_untyped_outputs_and_value_info_are_typed_by_inference_as_onnxruntime_does() -> None:
    """onnx-graphsurgeon and hand-built graphs often declare outputs without a type: the
    checker refuses them, onnxruntime infers the type."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Cast", ["y"], ["n"], to=TensorProto.INT64),
    ]
    model = _model(nodes)
    del model.graph.output[:]
    model.graph.output.extend([helper.make_empty_tensor_value_info(v) for v in ("y", "n")])
    model.graph.value_info.append(helper.make_empty_tensor_value_info("y"))
    session = _session(model)
    assert [(o.name, o.type, o.shape) for o in session.get_outputs()] == [
        ("y", "tensor(float)", [2, 3]),
        ("n", "tensor(int64)", [2, 3]),
    ]
    y, n = session.run(None, {"x": X})
    np.testing.assert_allclose(y, np.maximum(X, 0))
    assert n.dtype == np.int64
    expected = ort.InferenceSession(model.SerializeToString()).get_outputs()
    assert [(o.name, o.type, o.shape) for o in expected] == [
        (o.name, o.type, o.shape) for o in session.get_outputs()
    ]


def test_an_untyped_graph_input_is_refused_by_name() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    model.graph.input[0].CopyFrom(helper.make_empty_tensor_value_info("x"))
    with pytest.raises(onnxep.InvalidGraph, match="graph input 'x' has no type"):
        _session(model)


def test_shape_inference_types_intermediate_values() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE),
        helper.make_node("ReduceSum", ["c"], ["s"], keepdims=1),
        helper.make_node("Cast", ["s"], ["s32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "s32"], ["y"]),
    ]
    graph = _session(_model(nodes)).plan.graph
    assert graph.type_of("c").dtype == np.float64
    assert graph.type_of("c").shape == (2, 3)
    assert graph.type_of("s").shape == (1, 1)
    assert graph.type_of("s32").text == "tensor(float)"


def test_invented_symbols_of_shape_inference_are_unknown_dims() -> None:
    x = _io("x", ["batch", None])
    model = _model([helper.make_node("Relu", ["x"], ["y"])], inputs=[x])
    model.graph.output[0].CopyFrom(_io("y", [None, None]))
    graph = _session(model).plan.graph
    assert graph.type_of("y").shape == ("batch", None)


# --- model-local functions -----------------------------------------------------------------
def _function_model() -> onnx.ModelProto:
    body = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "b"], ["c"])]
    function = helper.make_function(
        "local.fn", "AddMul", ["a", "b"], ["c"], body, [helper.make_opsetid("", 17)]
    )
    nodes = [
        helper.make_node("AddMul", ["x", "w"], ["t"], domain="local.fn"),
        helper.make_node("AddMul", ["t", "x"], ["y"], domain="local.fn"),
    ]
    graph = helper.make_graph(nodes, "g", [_io("x"), _io("w")], [_io("y")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local.fn", 1)]
    model = helper.make_model(graph, opset_imports=opsets, functions=[function])
    model.ir_version = 8
    return model


def test_model_local_function_used_twice_is_inlined_and_matches_onnxruntime() -> None:
    model = _function_model()
    session = _session(model)
    assert [n.op_type for n in session.plan.graph.nodes] == ["Add", "Mul", "Add", "Mul"]
    assert session.plan.graph.type_of("t").shape == (2, 3)
    feeds = {"x": X, "w": W}
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(expected, ((X + W) * W + X) * X, rtol=1e-6)


# --- opsets --------------------------------------------------------------------------------
def test_every_opset_onnx_knows_loads_add_and_relu() -> None:
    newest = onnx.defs.onnx_opset_version()
    assert newest >= 21, "an onnx this old is not supported"
    ran = 0
    for opset in range(1, newest + 1):
        add = _model([helper.make_node("Add", ["x", "x"], ["y"])], opset=opset)
        relu = _model([helper.make_node("Relu", ["x"], ["y"])], opset=opset)
        np.testing.assert_allclose(_run(add), 2 * X, err_msg=f"Add at opset {opset}")
        np.testing.assert_allclose(_run(relu), np.maximum(X, 0), err_msg=f"Relu at opset {opset}")
        ran += 2
    assert ran == 2 * newest


# --- external data -------------------------------------------------------------------------
def _save_external(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(
        _add_w(), path, save_as_external_data=True, all_tensors_to_one_file=True,
        location="weights.bin", size_threshold=0,
    )  # fmt: skip
    return path


def _relocated(path: pathlib.Path, location: str, **fields: str) -> pathlib.Path:
    """A copy of the model next to ``path`` whose tensor ``w`` points at ``location``."""
    model = onnx.load(path, load_external_data=False)
    entries = model.graph.initializer[0].external_data
    values = {e.key: e.value for e in entries} | {"location": location, **fields}
    del entries[:]
    for key, value in values.items():
        entries.add(key=key, value=value)
    target = path.with_name(f"relocated_{abs(hash(location))}.onnx")
    onnx.save(model, target)
    return target


@pytest.fixture
def external(tmp_path: pathlib.Path) -> pathlib.Path:
    """A model saved with its weights in ``weights.bin`` beside it."""
    path = _save_external(tmp_path / "model")
    assert (path.parent / "weights.bin").stat().st_size == W.nbytes
    return path


def test_external_data_loads_from_the_models_path(external: pathlib.Path) -> None:
    np.testing.assert_allclose(_run(str(external)), EXPECTED)
    np.testing.assert_allclose(_run(external), EXPECTED)


def test_external_data_from_bytes_or_proto_asks_for_the_path(external: pathlib.Path) -> None:
    for source in (external.read_bytes(), onnx.load(external, load_external_data=False)):
        with pytest.raises(onnxep.InvalidArgument, match="load it from its path"):
            _session(source)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path opened through ``open`` or ``Path.open`` while the test runs."""
    seen: list[str] = []
    real_open, real_path_open = builtins.open, pathlib.Path.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(os.fspath(file) if isinstance(file, str | os.PathLike) else repr(file))
        return real_open(file, *args, **kwargs)

    def spy_path_open(self: pathlib.Path, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(self))
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(pathlib.Path, "open", spy_path_open)
    return seen


def _escapes(external: pathlib.Path) -> dict[str, str]:
    """Locations that leave the model's folder, each to a file that does not exist."""
    outside = external.parent.parent
    (external.parent / "link_missing.bin").symlink_to(outside / "missing_target.bin")
    (external.parent / "link_dir").symlink_to(outside, target_is_directory=True)
    return {
        "absolute": str(outside / "absent.bin"),
        "dotdot": "../absent.bin",
        "inner dotdot": "sub/../../absent.bin",
        "symlink": "link_missing.bin",
        "symlinked folder": "link_dir/absent.bin",
    }


def test_locations_escaping_the_folder_are_refused_before_any_read(
    external: pathlib.Path, opened: list[str]
) -> None:
    for kind, location in _escapes(external).items():
        relocated = _relocated(external, location)
        opened.clear()
        with pytest.raises(onnxep.InvalidGraph) as err:
            _session(relocated)
        message = str(err.value)
        assert "'w'" in message and repr(location) in message, (kind, message)
        assert "outside the model's folder" in message, (kind, message)
        assert opened == [str(relocated)], (kind, opened)


def test_an_existing_file_outside_the_folder_is_refused_too(
    external: pathlib.Path, opened: list[str]
) -> None:
    secret = external.parent.parent / "secret.bin"
    secret.write_bytes(W.tobytes())
    (external.parent / "link.bin").symlink_to(secret)
    for location in (str(secret), "../secret.bin", "link.bin"):
        relocated = _relocated(external, location)
        opened.clear()
        with pytest.raises(onnxep.InvalidGraph, match="outside the model's folder"):
            _session(relocated)
        assert str(secret) not in opened


def test_a_symlink_that_stays_inside_the_folder_is_followed(external: pathlib.Path) -> None:
    (external.parent / "alias.bin").symlink_to(external.parent / "weights.bin")
    np.testing.assert_allclose(_run(_relocated(external, "alias.bin")), EXPECTED)


def test_missing_external_file_is_no_such_file(external: pathlib.Path) -> None:
    with pytest.raises(onnxep.NoSuchFile, match=r"'w'.*'gone\.bin'"):
        _session(_relocated(external, "gone.bin"))


def test_external_data_shorter_than_its_offset_and_length_is_invalid_graph(
    external: pathlib.Path,
) -> None:
    relocated = _relocated(external, "weights.bin", offset="16", length=str(W.nbytes))
    with pytest.raises(onnxep.InvalidGraph, match=r"'w'.*offset\+length"):
        _session(relocated)


def test_load_model_returns_the_folder_for_paths_only(external: pathlib.Path) -> None:
    model, folder = load_model(external)
    assert folder == external.parent.resolve()
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer)
    assert load_model(_add_w())[1] is None
