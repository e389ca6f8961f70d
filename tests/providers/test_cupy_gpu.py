"""The CuPy provider on a real GPU: every kernel, fusion, residency, io_binding, CUDA graphs.

Every test here is marked ``gpu``: skipped with the reason where ``CuPyProvider`` is not
available, a failure instead when ``ONNXEP_REQUIRE_GPU=1`` (see ``conftest.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
import pytest
from cupy_cases import CASES, KNOWN_DIFFERENCES, Case, chain_model, reference_outputs
from onnx import helper

import onnxep
from onnxep.models import build_encoder, encoder_inputs, light_model_paths

pytestmark = pytest.mark.gpu
CUPY = "CuPyExecutionProvider"


CHAIN = chain_model(256, "n")  # fusible elementwise tree, symbolic batch


@pytest.fixture
def cp() -> Any:
    import cupy

    return cupy


def _session(model: Any, **options: Any) -> onnxep.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return onnxep.InferenceSession(data, providers=[(CUPY, options)])


@pytest.mark.parametrize("case", CASES)
def test_kernel_on_gpu_matches_reference(case: Case) -> None:
    session = _session(case.model())
    assert session.assignment(0) == CUPY, session.explain()
    feeds = case.data()
    got = session.run(None, feeds)
    for g, want in zip(got, reference_outputs(case, feeds)):
        assert isinstance(g, np.ndarray)
        assert g.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(g.astype(np.float64), want, **case.tolerance)


def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return onnxep.InferenceSession(model.SerializeToString(), providers=["reference"]).run(
        None, feeds
    )


X = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)


def test_chain_is_one_fused_kernel_and_stays_resident() -> None:
    from onnxep_cupy._fused import elementwise_kernel

    session = _session(CHAIN)
    (program,) = session.providers[0].programs
    assert program.kernel_steps == 1 and program.fused[0].n_nodes == 5
    transfers = session.explain().to_dict()["transfers"]
    assert transfers["per_run"] == 2, transfers  # x up, y down; b uploaded once
    y = session.run(None, {"x": X})[0]
    assert session.plan.stats.count == 2
    np.testing.assert_allclose(y, _reference(CHAIN, {"x": X})[0], rtol=1e-5, atol=1e-6)
    assert elementwise_kernel.cache_info().currsize >= 1


def test_cupy_feed_is_not_copied_again(cp: Any) -> None:
    session = _session(CHAIN)
    y = session.run(None, {"x": cp.asarray(X)})[0]
    assert isinstance(y, np.ndarray)
    assert session.plan.stats.count == 1  # only y comes back; x is used where it is
    np.testing.assert_allclose(y, _reference(CHAIN, {"x": X})[0], rtol=1e-5, atol=1e-6)


def test_io_binding_keeps_outputs_on_the_gpu(cp: Any) -> None:
    session = _session(CHAIN)
    binding = session.io_binding()
    x = cp.asarray(X)
    binding.bind_input("x", "cuda", 0, np.float32, x.shape, x.data.ptr)
    binding.bind_output("y", "cuda")
    session.run_with_iobinding(binding)
    (y,) = binding.get_outputs()
    assert y.device_name() == "cuda" and isinstance(cp.asarray(y), cp.ndarray)
    assert session.plan.stats.count == 0  # nothing crossed to the host
    np.testing.assert_allclose(
        binding.copy_outputs_to_cpu()[0],
        _reference(CHAIN, {"x": X})[0],
        rtol=1e-5,
        atol=1e-6,
    )


def test_cuda_graph_replays_and_matches(cp: Any) -> None:
    from onnxep_cupy.cuda_graph import GraphRunner

    session = _session(CHAIN, enable_cuda_graph="1")
    want = _reference(CHAIN, {"x": X})[0]
    runner = next(v for v in session.plan._namespace.values() if isinstance(v, GraphRunner))
    results = [session.run(None, {"x": X * s})[0] for s in (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)]
    assert runner.replays >= 3, "no CUDA graph was replayed"
    for y in results[:3]:
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[5], _reference(CHAIN, {"x": X * 2})[0], rtol=1e-5)


@pytest.mark.parametrize("name", ["squeezenet", "resnet50", "inception_v2"])
def test_light_model_matches_reference(name: str) -> None:
    models = {m.name: m for m in light_model_paths()}
    if name not in models:
        pytest.skip(f"this onnx build ships no light_{name}")
    light = models[name]
    model = onnx.load(str(light.path))
    # Constant weights can give huge logits a few ulps apart (squeezenet: ~7e9), where the
    # softmax depends on rounding alone: compare the logits, relatively.
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    if softmax:
        model.graph.output.append(helper.make_tensor_value_info(softmax[-1].input[0], 1, None))
    session = _session(model)
    explained = session.explain().to_dict()
    assert {s["provider"] for s in explained["segments"]} == {CUPY}, session.explain()
    feeds = {
        n: np.random.default_rng(0).standard_normal(s).astype(np.float32)
        for n, s in light.input_shapes.items()
    }
    got, want = session.run(None, feeds), _reference(model, feeds)
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-3, atol=1e-4)


def test_encoder_float32_on_gpu() -> None:
    model = build_encoder(layers=2, hidden=64, heads=4, ffn=128, seq=16)
    session = _session(model)
    assert {s["provider"] for s in session.explain().to_dict()["segments"]} == {CUPY}
    feeds = encoder_inputs(model)
    np.testing.assert_allclose(
        session.run(None, feeds)[0], _reference(model, feeds)[0], rtol=1e-3, atol=1e-3
    )


@pytest.mark.slow
def test_onnx_node_cases_of_every_claimed_op_on_gpu() -> None:
    """``onnxep verify cupy``: every node case touching a claimed op, on the GPU."""
    from onnxep.verify import verify_provider

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = verify_provider(CUPY)
    failed = {(op, case, why) for op, r in results.items() for case, why in r.failed}
    unexpected = sorted(f for f in failed if f[1] not in KNOWN_DIFFERENCES)
    assert not unexpected, unexpected
    assert sum(len(r.passed) for r in results.values()) > 3000
