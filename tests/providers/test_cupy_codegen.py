"""The op-tree -> CUDA expression generator, without a GPU.

The generated text is compared as a string, evaluated with numpy (the same text: the subset
parses as Python) against onnx's reference implementation, and, where CuPy and NVRTC are
installed (no device needed), compiled as CUDA C++ for float and float16.
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from onnxep_cupy.codegen import OPS, PREAMBLE, EwNode, FusedKernelSpec, evaluate_numpy, fuse_tree

RNG = np.random.default_rng(5)
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 25.0, -25.0, 0.5, -2.5], np.float32)


def test_add_relu_with_a_scalar_constant() -> None:
    spec = fuse_tree(
        EwNode("Relu", ("s",), "y"), {"s": EwNode("Add", ("x", "one"), "s")}, {"one": 1.0}
    )
    assert spec.inputs == ("x",) and spec.kinds == ("T",)
    assert spec.in_params == "T in0" and spec.out_params == "T out0"
    assert spec.operation == (
        "float v0 = float(in0);\n"
        "float t1 = (v0 + float(1.0));\n"
        "float t2 = ox_where((t1 < float(0.0)), float(0.0), t1);\n"
        "out0 = T(t2);"
    )
    assert spec.name.startswith("onnxep_fused_") and spec.n_nodes == 2


def test_where_condition_is_a_bool_parameter_and_comparisons_inline() -> None:
    spec = fuse_tree(
        EwNode("Where", ("c", "x", "z"), "y"), {"c": EwNode("Greater", ("x", "t"), "c")}
    )
    assert spec.kinds == ("T", "T", "T") and spec.n_nodes == 2
    assert "bool t2 = (v0 > v1);" in spec.operation
    plain = fuse_tree(EwNode("Where", ("c", "x", "z"), "y"))
    assert plain.in_params == "bool in0, T in1, T in2"


def test_non_float_parameter_types_are_explicit() -> None:
    spec = fuse_tree(EwNode("Pow", ("x", "e"), "y"), dtypes={"e": "int64"})
    assert spec.in_params == "T in0, int64 in1"
    x = np.array([1.5, -2.0], np.float16)
    np.testing.assert_allclose(evaluate_numpy(spec, x, np.array([3, 2])), [3.375, 4.0])


def test_a_long_chain_grows_linearly() -> None:
    """Each value is a temporary: 200 nested nodes are 200 statements, not 2**200 terms."""
    producers = {f"r{i}": EwNode("Relu", (f"r{i + 1}",), f"r{i}") for i in range(1, 200)}
    producers["r200"] = EwNode("Sigmoid", ("x",), "r200")
    spec = fuse_tree(EwNode("Relu", ("r1",), "y"), producers)
    assert spec.n_nodes == 201 and len(spec.body) == 202 and len(spec.operation) < 20_000


def test_only_constants_fall_back_to_a_parameter() -> None:
    spec = fuse_tree(EwNode("Neg", ("c",), "y"), constants={"c": 2.0})
    assert spec.inputs == ("c",)


def test_a_bool_root_is_refused() -> None:
    with pytest.raises(ValueError, match="must produce floats"):
        fuse_tree(EwNode("Less", ("a", "b"), "y"))


def test_parsing_refuses_text_outside_the_subset() -> None:
    bad = FusedKernelSpec(("x",), ("T",), (("f", "t0", "x.real"),), "t0", "y", 1)
    with pytest.raises(ValueError, match="outside the C/Python subset"):
        evaluate_numpy(bad, np.ones(2, np.float32))


# --- semantics of every template, against onnx's reference implementation --------------
def _inputs(op: str) -> list[np.ndarray]:
    template = OPS[op]
    n = {"Clip": 3, "Where": 3}.get(op, 3 if template.variadic else len(template.kinds))
    data = []
    for i in range(n):
        if template.kind_of(i) == "b":
            data.append(RNG.random(SPECIAL.shape) > 0.5)
        elif op == "Pow" and i == 1:
            data.append(np.float32(RNG.integers(-2, 3, SPECIAL.shape)))
        elif op == "PRelu" and i == 1:  # onnx computes x * slope everywhere: NaN for inf slopes
            data.append(RNG.standard_normal(SPECIAL.shape).astype(np.float32))
        elif op == "Clip" and i > 0:
            data.append(np.array(-1.0 if i == 1 else 2.0, np.float32))
        else:
            data.append(RNG.permutation(SPECIAL) if i else SPECIAL.copy())
    return data


def _reference(op: str, data: list[np.ndarray], opset: int) -> np.ndarray:
    names = [f"x{i}" for i in range(len(data))]
    elem = {np.dtype(bool): onnx.TensorProto.BOOL, np.dtype(np.float32): onnx.TensorProto.FLOAT}
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"])],
        op,
        [helper.make_tensor_value_info(n, elem[d.dtype], d.shape) for n, d in zip(names, data)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UNDEFINED, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    with np.errstate(all="ignore"):
        return ReferenceEvaluator(model).run(None, dict(zip(names, data)))[0]


FLOAT_OPS = sorted(op for op, t in OPS.items() if t.out == "f")
OVERFLOWS = {"Softplus", "Mish"}  # onnx computes log(exp(x) + 1), infinite from x > 88


@pytest.mark.parametrize("op", FLOAT_OPS)
def test_template_matches_onnx_reference(op: str) -> None:
    data = _inputs(op)
    spec = fuse_tree(EwNode(op, tuple(f"x{i}" for i in range(len(data))), "y"))
    got = evaluate_numpy(spec, *(data[int(name[1:])] for name in spec.inputs))
    opset = {"Gelu": 20, "Mish": 22, "HardSwish": 22}.get(op, 17)
    want = _reference(op, data, opset)
    keep = np.ones(want.shape, bool)
    if op in OVERFLOWS:
        keep = np.isfinite(want) | np.isnan(want)
    np.testing.assert_allclose(got[keep], want[keep], rtol=2e-6, atol=2e-6, equal_nan=True)
    if op in OVERFLOWS:  # where onnx overflows, the template returns x itself (large x)
        assert np.all(np.isfinite(got[~keep]) | np.isinf(data[0][~keep]))


def test_tree_equals_node_by_node() -> None:
    """x * sigmoid(x) + clip(x, 0, 6): one kernel equals three separate ones."""
    tree = {
        "s": EwNode("Sigmoid", ("x",), "s"),
        "m": EwNode("Mul", ("x", "s"), "m"),
        "c": EwNode("Clip", ("x", "lo", "hi"), "c"),
    }
    spec = fuse_tree(EwNode("Add", ("m", "c"), "y"), tree, {"lo": 0.0, "hi": 6.0})
    x = RNG.standard_normal((3, 4)).astype(np.float32) * 4
    sigmoid = 1 / (1 + np.exp(-x))
    want = x * sigmoid + np.clip(x, 0, 6)
    np.testing.assert_allclose(evaluate_numpy(spec, x), want, rtol=1e-6)


def test_float16_rounds_once_at_the_store() -> None:
    spec = fuse_tree(EwNode("Add", ("x", "b"), "y"))
    x, b = np.array([1000.0], np.float16), np.array([0.3], np.float16)
    out = evaluate_numpy(spec, x, b)
    assert out.dtype == np.float16 and out[0] == np.float16(1000.3)


def test_broadcasting_follows_all_parameters() -> None:
    spec = fuse_tree(EwNode("Sub", ("a", "b"), "y"))
    out = evaluate_numpy(spec, np.ones((2, 1), np.float32), np.arange(3, dtype=np.float32))
    assert out.shape == (2, 3)


def test_literals() -> None:
    spec = fuse_tree(EwNode("Clip", ("x",), "y", {"min": -math.inf, "max": 6.0}))
    assert "(-OX_INF)" in spec.operation and "float(6.0)" in spec.operation
    np.testing.assert_array_equal(evaluate_numpy(spec, SPECIAL), np.minimum(SPECIAL, 6.0))


# --- CUDA C++ compilation with NVRTC (CuPy installed; no GPU needed) ---------------------
def _nvrtc() -> tuple[object, list[str]]:
    try:
        import cupy
        from cupy.cuda import compiler, nvrtc

        nvrtc.getVersion()
    except Exception as exc:
        pytest.skip(f"CuPy with NVRTC is not usable here: {type(exc).__name__}: {exc}")
    includes = [os.path.join(os.path.dirname(cupy.__file__), "_core", "include")]
    try:
        import nvidia.cuda_runtime as rt  # the CUDA headers from the nvidia-cuda-runtime wheel

        includes.append(os.path.join(next(iter(rt.__path__)), "include"))
    except ImportError:
        path = cupy.cuda.get_cuda_path()
        if path is None:
            pytest.skip("no CUDA headers (cuda_fp16.h) found")
        includes.append(os.path.join(path, "include"))
    return compiler, includes


def _cupy_source(spec: FusedKernelSpec, t: str) -> str | None:
    """The exact source CuPy would compile for 3-D strided arrays (its private code
    generator; None where this CuPy version differs)."""
    try:
        import cupy
        from cupy._core import _carray
        from cupy._core import _kernel as k

        kernel = cupy.ElementwiseKernel(
            spec.in_params, spec.out_params, spec.operation, spec.name, preamble=PREAMBLE
        )
        params = kernel.in_params + kernel.out_params
        dtypes = [np.dtype(t) if p.ctype == "T" else p.dtype for p in params]
        infos = tuple(k._ArgInfo(1, cupy.ndarray, d, 3, False, True) for d in dtypes)
        infos += (k._ArgInfo(2, _carray.Indexer, None, 3, True, True),)
        type_map = k._TypeMap((("T", np.dtype(t)),))
        code = k._get_elementwise_kernel_code(
            infos, type_map, kernel.params, kernel.operation, kernel.name, kernel.preamble
        )
    except Exception:
        return None
    return "#include <cupy/carray.cuh>\n" + code


def _kernel_source(spec: FusedKernelSpec, t: str) -> str:
    """CuPy's own source when available, else the same shape written here."""
    exact = _cupy_source(spec, {"float": "float32"}.get(t, t))
    if exact is not None:
        return exact
    ctype = {"T": "T", "bool": "bool", "int64": "long long", "int32": "int"}
    params = [f"const {ctype[k]}* _raw_in{i}" for i, k in enumerate(spec.kinds)]
    loads = [f"const {ctype[k]} &in{i} = _raw_in{i}[i];" for i, k in enumerate(spec.kinds)]
    return (
        f"#include <cupy/carray.cuh>\n#include <cupy/float16.cuh>\ntypedef {t} T;\n{PREAMBLE}\n"
        f'extern "C" __global__ void {spec.name}({", ".join(params)}, T* _raw_out0, int n) {{\n'
        "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i >= n) return;\n"
        f"  {' '.join(loads)} T &out0 = _raw_out0[i];\n  {spec.operation}\n}}\n"
    )


def test_every_template_compiles_with_nvrtc() -> None:
    compiler, includes = _nvrtc()
    specs = [
        fuse_tree(EwNode(op, tuple(f"x{i}" for i in range(len(_inputs(op)))), "y"))
        for op in FLOAT_OPS
    ]
    specs.append(fuse_tree(EwNode("Gelu", ("x",), "y", {"approximate": "tanh"})))
    specs.append(fuse_tree(EwNode("Pow", ("x", "e"), "y"), dtypes={"e": "int64"}))
    specs.append(fuse_tree(EwNode("Clip", ("x",), "y", {"min": -math.inf, "max": math.nan})))
    options = (*(f"-I{i}" for i in includes), "-std=c++17", "--gpu-architecture=compute_80")
    for t in ("float", "float16"):
        for spec in specs:
            compiler._NVRTCProgram(_kernel_source(spec, t), spec.name).compile(options)
