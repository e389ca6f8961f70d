"""Single-node models and the three runners the reference kernels are compared across.

``run_onnxep`` also proves the node really ran on the hand-written kernel (not on onnx's
fallback op): a silent fallback would pass every numeric check.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import onnxep
from onnxep.reference import ReferenceProvider
from onnxep.testing import kernel_test_options

REFERENCE = "ReferenceExecutionProvider"


def make_model(
    op_type: str,
    inputs: Mapping[str, Any],
    opset: int,
    *,
    n_outputs: int = 1,
    constants: Sequence[str] = (),
    outputs: Sequence[str] | None = None,
    domain: str = "",
    **attrs: Any,
) -> onnx.ModelProto:
    """One ``op_type`` node over ``inputs`` (name -> array, or None for a missing optional).

    Names in ``constants`` become initializers; the rest are graph inputs with the arrays'
    dtypes and shapes. IR version 8, so onnxruntime 1.31 loads it too. An op of another
    ``domain`` (ai.onnx.ml) gets ``opset`` of that domain, beside ai.onnx's, and the IR
    version its opset needs.
    """
    names = list(inputs)
    while names and inputs[names[-1]] is None:  # trailing missing optionals: leave them out
        names.pop()
    outs = list(outputs) if outputs is not None else [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(
        op_type, [n if inputs[n] is not None else "" for n in names], outs, domain=domain, **attrs
    )
    graph_inputs, initializers = [], []
    for name in names:
        value = inputs[name]
        if value is None:
            continue
        array = np.asarray(value)
        if name in constants:
            initializers.append(numpy_helper.from_array(array, name))
            continue
        elem = helper.np_dtype_to_tensor_dtype(array.dtype)
        graph_inputs.append(helper.make_tensor_value_info(name, elem, array.shape))
    graph_outputs = [helper.make_empty_tensor_value_info(o) for o in outs if o]
    graph = helper.make_graph([node], op_type, graph_inputs, graph_outputs, initializers)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets = [helper.make_opsetid("", 19), helper.make_opsetid(domain, opset)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = max(8, helper.find_min_ir_version_for(opsets)) if domain else 8
    return _typed_outputs(model)


def _typed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give the graph outputs the types shape inference finds (the checker wants them)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in inferred.graph.value_info}
    types.update({v.name: v for v in inferred.graph.output if v.type.WhichOneof("value")})
    first = next(iter(model.graph.input), None)
    for out in model.graph.output:
        if out.name in types:
            out.CopyFrom(types[out.name])
        elif first is not None:  # inference gave up (function ops): the first input's type
            elem = first.type.tensor_type.elem_type
            out.CopyFrom(helper.make_tensor_value_info(out.name, elem, None))
    return model


def feeds_of(model: onnx.ModelProto, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The values of the model's graph inputs."""
    return {i.name: np.asarray(inputs[i.name]) for i in model.graph.input}


def hand_written_nodes(session: onnxep.InferenceSession) -> dict[str, bool]:
    """Node label -> whether the reference provider ran it with a hand-written kernel."""
    ran = {}
    for segment in session.plan.partition.segments:
        for node in segment.nodes:
            kernel = ReferenceProvider.kernels.lookup(node.key)
            used = segment.provider.kernel_for(segment.info(node))
            ran[node.label] = (
                segment.provider.name == REFERENCE and kernel is not None and used is kernel
            )
    return ran


def run_onnxep(
    model: onnx.ModelProto, inputs: Mapping[str, Any], *, hand_written: bool = True
) -> list[Any]:
    """Run on the reference provider; assert (by default) that every node ran hand-written."""
    session = onnxep.InferenceSession(
        model.SerializeToString(), kernel_test_options(), providers=["reference"]
    )
    if hand_written:
        ran = hand_written_nodes(session)
        assert all(ran.values()), f"not run by a hand-written kernel: {ran}\n{session.explain()}"
        for index in range(len(model.graph.node)):
            assert session.assignment(index) == REFERENCE, session.explain()
    feeds = feeds_of(model, inputs)
    before = {name: value.copy() for name, value in feeds.items()}
    outputs = session.run(None, feeds)
    for name, value in feeds.items():  # kernels never write into their inputs
        np.testing.assert_array_equal(value, before[name], err_msg=f"input {name} was modified")
    return outputs


def run_evaluator(model: onnx.ModelProto, inputs: Mapping[str, Any]) -> list[Any]:
    """onnx's ReferenceEvaluator (its numpy warnings silenced)."""
    from onnx.reference import ReferenceEvaluator

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return list(ReferenceEvaluator(model).run(None, feeds_of(model, inputs)))


def run_onnxruntime(model: onnx.ModelProto, inputs: Mapping[str, Any]) -> list[Any]:
    """onnxruntime's CPU provider."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return list(session.run(None, feeds_of(model, inputs)))


def assert_close(actual: Sequence[Any], expected: Sequence[Any], rtol: float, atol: float) -> None:
    """Same count, shapes and dtypes; values within tolerance (exact for non-floats);
    strings equal as str, onnxep's always object arrays (as onnxruntime returns them)."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"output {i}: shape {a.shape} != {e.shape}"
        if e.dtype.kind in "OU":
            assert a.dtype == object, f"output {i}: {a.dtype}"
            assert a.astype(str).tolist() == e.astype(str).tolist(), f"output {i}"
            continue
        assert a.dtype == e.dtype, f"output {i}: dtype {a.dtype} != {e.dtype}"
        if e.dtype.kind == "f":
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"output {i}")


def check(
    op_type: str,
    inputs: Mapping[str, Any],
    opset: int,
    *,
    oracle: str = "evaluator",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    **kwargs: Any,
) -> list[Any]:
    """Build, run hand-written on onnxep and compare with ``oracle`` (evaluator or ort)."""
    model = make_model(op_type, inputs, opset, **kwargs)
    actual = run_onnxep(model, inputs)
    runner = run_onnxruntime if oracle == "ort" else run_evaluator
    expected = runner(model, inputs)
    assert_close(actual, expected, rtol, atol)
    return actual


def rand(
    *shape: int, dtype: Any = np.float32, seed: int = 0, low: float = -2.0, high: float = 2.0
) -> np.ndarray:
    """Reproducible uniform random data of any numeric dtype."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else int(low) * 3
        return rng.integers(lo, int(high) * 3 + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)
