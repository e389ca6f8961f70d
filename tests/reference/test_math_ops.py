"""Elementwise reference kernels against onnx's ReferenceEvaluator, every registered version."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxep
from onnxep.reference import ReferenceProvider, math_ops
from onnxep.registry import OpKey

from .helpers import (
    check,
    hand_written_nodes,
    make_model,
    rand,
    run_evaluator,
    run_onnxep,
    run_onnxruntime,
)

# op -> (versions, low, high): input range inside the op's domain
UNARY = {
    "Abs": ((6, 13), -3, 3), "Neg": ((6, 13), -3, 3), "Exp": ((6, 13), -5, 5),
    "Log": ((6, 13), 0.1, 9), "Sqrt": ((6, 13), 0, 9), "Reciprocal": ((6, 13), 0.5, 4),
    "Floor": ((6, 13), -5, 5), "Ceil": ((6, 13), -5, 5), "Tanh": ((6, 13), -4, 4),
    "Sigmoid": ((6, 13), -30, 30), "Relu": ((6, 13, 14), -3, 3), "Round": ((11, 22), -5, 5),
    "Sin": ((7, 22), -4, 4), "Cos": ((7, 22), -4, 4), "Tan": ((7, 22), -1.4, 1.4),
    "Asin": ((7, 22), -0.99, 0.99), "Acos": ((7, 22), -0.99, 0.99), "Atan": ((7, 22), -9, 9),
    "Sinh": ((9, 22), -4, 4), "Cosh": ((9, 22), -4, 4), "Asinh": ((9, 22), -9, 9),
    "Acosh": ((9, 22), 1, 9), "Atanh": ((9, 22), -0.99, 0.99), "Sign": ((9, 13), -3, 3),
    "Erf": ((9, 13), -4, 4), "Softplus": ((1, 22), -30, 30), "Softsign": ((1, 22), -5, 5),
    "Mish": ((18, 22), -6, 6), "HardSwish": ((14, 22), -5, 5), "IsNaN": ((9, 13, 20), -1, 1),
}  # fmt: skip


def _unary_cases():
    for op, (versions, lo, hi) in UNARY.items():
        for v in versions:
            yield pytest.param(op, v, np.float32, (2, 3, 5), lo, hi, id=f"{op}-{v}")
        last = versions[-1]
        yield pytest.param(op, last, np.float64, (7,), lo, hi, id=f"{op}-{last}-f64")
        yield pytest.param(op, last, np.float16, (4, 3), lo, hi, id=f"{op}-{last}-f16")
        yield pytest.param(op, last, np.float32, (0, 3), lo, hi, id=f"{op}-{last}-empty")
        yield pytest.param(op, last, np.float32, (), lo, hi, id=f"{op}-{last}-scalar")


@pytest.mark.parametrize(("op", "opset", "dtype", "shape", "lo", "hi"), list(_unary_cases()))
def test_unary(op, opset, dtype, shape, lo, hi):
    x = rand(*shape, dtype=dtype, low=lo, high=hi)
    tol = 2e-3 if dtype == np.float16 else 1e-5
    oracle = "ort" if shape == () else "evaluator"  # the evaluator fails on some 0-d inputs
    check(op, {"x": x}, opset, rtol=tol, atol=tol, oracle=oracle)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
@pytest.mark.parametrize("op", ["Abs", "Sign"])
def test_unary_integers(op, dtype):
    check(op, {"x": rand(3, 4, dtype=dtype)}, 13)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_neg_relu_integers(dtype):
    x = rand(3, 4, dtype=dtype)
    check("Neg", {"x": x}, 13)
    check("Relu", {"x": x}, 14)


def test_erf_matches_math_erf():
    """Erf is an approximation in float32 (~1 ulp) and exact in float64."""
    x = np.concatenate([np.linspace(-6, 6, 2001), [0.0, -0.0, 1e-30, -1e-8, 0.4999, 0.5]])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(
        math_ops.erf_array(x.astype(np.float32)), expected, rtol=3e-7, atol=1e-7
    )
    np.testing.assert_array_equal(math_ops.erf_array(x), expected)
    special = math_ops.erf_array(np.array([np.inf, -np.inf, np.nan, -0.0], np.float32))
    np.testing.assert_array_equal(special, [1, -1, np.nan, 0])
    assert np.signbit(special[-1])


def test_float32_erf_is_within_one_ulp_of_math_erf():
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [
            rng.uniform(-5, 5, 100_000),
            rng.uniform(-1e-3, 1e-3, 10_000),
            np.geomspace(1e-38, 4, 2000),
        ]
    ).astype(np.float32)
    want = np.array([math.erf(float(v)) for v in x]).astype(np.float32)
    got = math_ops.erf_array(x)
    assert got.dtype == np.float32
    ulps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))
    assert ulps.max() <= 1.0, x[np.argmax(ulps)]


ACTIVATIONS = [
    ("LeakyRelu", (6, 16), {"alpha": 0.3}),
    ("Elu", (6, 22), {"alpha": 0.7}),
    ("Selu", (6, 22), {"alpha": 1.5, "gamma": 2.0}),
    ("Celu", (12,), {"alpha": 0.5}),
    ("HardSigmoid", (6, 22), {"alpha": 0.3, "beta": 0.4}),
    ("ThresholdedRelu", (10, 22), {"alpha": 0.5}),
    ("Shrink", (9,), {"bias": 0.3, "lambd": 0.7}),
    ("Gelu", (20,), {"approximate": "tanh"}),
    ("Gelu", (20,), {}),
    ("IsInf", (10, 20), {}),
    ("IsInf", (20,), {"detect_negative": 0}),
    ("IsInf", (20,), {"detect_positive": 0}),
]


@pytest.mark.parametrize(
    ("op", "opset", "attrs"),
    [
        pytest.param(op, v, attrs, id=f"{op}-{v}-{'-'.join(map(str, attrs.values()))}")
        for op, versions, attrs in ACTIVATIONS
        for v in versions
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_attributes(op, opset, attrs, dtype):
    if op == "Celu" and dtype == np.float64:
        pytest.skip("Celu-12 is float32 only")
    x = rand(3, 7, dtype=dtype, low=-4, high=4)
    if op == "IsInf":
        x = np.array([np.inf, -np.inf, np.nan, 1.0, -2.0], dtype=dtype)
    check(op, {"x": x}, opset, **attrs)


def test_celu_28_float16():
    check("Celu", {"x": rand(9, dtype=np.float16)}, 28, rtol=2e-3, atol=2e-3)


def test_isnan_with_nans():
    check("IsNaN", {"x": np.array([np.nan, 1.0, -np.inf, np.nan], np.float32)}, 20)


@pytest.mark.parametrize("opset", [7, 9, 16])
@pytest.mark.parametrize("slope_shape", [(1,), (5,), (3, 1), (2, 3, 5)])
def test_prelu_broadcast(opset, slope_shape):
    check("PRelu", {"x": rand(2, 3, 5), "slope": rand(*slope_shape, seed=1)}, opset)


BINARY_SHAPES = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((5,), ()),
    ((0, 3), (3,)),
]


@pytest.mark.parametrize(("a_shape", "b_shape"), BINARY_SHAPES)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("opset", [7, 13, 14])
def test_arithmetic_broadcast(op, opset, a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape, seed=1, low=0.5, high=3)
    check(op, {"a": a, "b": b}, opset)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.float16, np.float64]
)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_arithmetic_dtypes(op, dtype):
    a = rand(4, 5, dtype=dtype)
    b = rand(4, 5, dtype=dtype, seed=1)
    if np.dtype(dtype).kind in "iu":
        b[b == 0] = 3  # no division by zero; negative operands check truncation toward zero
    check(op, {"a": a, "b": b}, 14, rtol=1e-3)


def test_integer_division_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 0], np.int32)
    b = np.array([2, 2, -2, -2, 5], np.int32)
    (y,) = run_onnxep(make_model("Div", {"a": a, "b": b}, 14), {"a": a, "b": b})
    np.testing.assert_array_equal(y, [3, -3, -3, 3, 0])


@pytest.mark.parametrize(
    ("base", "exponent"),
    [
        (np.float32, np.float32),
        (np.float32, np.int64),
        (np.float64, np.int32),
        (np.float16, np.float16),
        (np.int32, np.int32),
        (np.int64, np.float32),
    ],
)
@pytest.mark.parametrize("opset", [7, 12, 13, 15])
def test_pow(opset, base, exponent):
    if (opset == 7 and base != exponent) or (opset < 12 and np.dtype(base).kind == "i"):
        pytest.skip("Pow-7 takes one float type for both inputs")
    x = rand(3, 4, dtype=base, low=0.5, high=2)
    y = rand(4, dtype=exponent, seed=1, low=-2, high=2)
    check("Pow", {"x": x, "y": y}, opset, rtol=2e-3)


@pytest.mark.parametrize("exponent", [3.0, -3.0, 4.0, 5.0, 8.0, -7.0, 2.5, 9.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_pow_by_a_constant_integer_as_onnxruntime(exponent, dtype):
    """Small integer exponents multiply (GPT-2's GELU has Pow(x, 3)); onnxruntime agrees to
    the last bit on x ** 3."""
    x = rand(2, 3, 50, dtype=dtype, low=-3, high=3)
    inputs = {"x": x, "e": np.array(exponent, dtype)}
    tol = 2e-3 if dtype == np.float16 else 1e-6
    (got,) = check("Pow", inputs, 15, oracle="ort", rtol=tol, atol=tol, constants=("e",))
    if exponent == 3.0 and dtype == np.float32:
        np.testing.assert_array_equal(
            got, run_onnxruntime(make_model("Pow", inputs, 15), inputs)[0]
        )


def test_pow_by_a_scalar_of_higher_rank_still_broadcasts():
    inputs = {"x": rand(4, low=0.5, high=2), "e": np.full((1, 1), 3.0, np.float32)}
    (got,) = check("Pow", inputs, 15, oracle="ort", constants=("e",))
    assert got.shape == (1, 4)


@pytest.mark.parametrize(
    ("dtype", "fmod"),
    [(np.int32, 0), (np.int64, 0), (np.int8, 1), (np.float32, 1), (np.float64, 1)],
)
@pytest.mark.parametrize("opset", [10, 13, 28])
def test_mod(opset, dtype, fmod):
    a = rand(4, 5, dtype=dtype, low=-9, high=9)
    b = rand(5, dtype=dtype, seed=1, low=1, high=4)
    b[b == 0] = 3
    b[::2] = -b[::2]
    check("Mod", {"a": a, "b": b}, opset, fmod=fmod)


def test_mod_28_floats_floor_semantics():
    a = np.array([5.5, -5.5, 5.5, -5.5, 0.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0], np.float32)
    (y,) = run_onnxep(make_model("Mod", {"a": a, "b": b}, 28), {"a": a, "b": b})
    np.testing.assert_array_equal(y, [1.5, 0.5, -0.5, -1.5, 0.0])


def test_mod_13_floats_without_fmod_falls_back():
    a = np.array([5.5], np.float32)
    model = make_model("Mod", {"a": a, "b": a}, 13)
    with pytest.raises(AssertionError, match="not run by a hand-written kernel"):
        run_onnxep(model, {"a": a, "b": a})


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("opset", [6, 8, 13])
def test_variadic(op, opset, n):
    shapes = [(2, 3, 4), (3, 4), (1, 4)] if opset >= 8 else [(3, 4)] * 3
    inputs = {f"x{i}": rand(*shapes[i], seed=i) for i in range(n)}
    check(op, inputs, opset)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.int64])
@pytest.mark.parametrize(
    ("op", "opset"),
    [("Equal", 11), ("Equal", 13), ("Less", 9), ("Less", 13), ("Greater", 13),
     ("LessOrEqual", 12), ("LessOrEqual", 16), ("GreaterOrEqual", 16)],
)  # fmt: skip
def test_comparisons(op, opset, dtype):
    a, b = rand(3, 4, dtype=dtype), rand(4, dtype=dtype, seed=1)
    check(op, {"a": a, "b": b}, opset)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    check(op, {"a": rand(3, 4, dtype=bool), "b": rand(4, dtype=bool, seed=1)}, 7)
    check("Not", {"x": rand(3, 4, dtype=bool)}, 1)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.uint64])
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(op, dtype):
    check(op, {"a": rand(3, 4, dtype=dtype), "b": rand(4, dtype=dtype, seed=1)}, 18)
    check("BitwiseNot", {"x": rand(3, 4, dtype=dtype)}, 18)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_bit_shift_11(direction, dtype):
    x = rand(3, 4, dtype=dtype, high=20)
    y = np.array([0, 1, 2, 3], dtype=dtype)
    check("BitShift", {"x": x, "y": y}, 11, direction=direction)


def test_bit_shift_28_out_of_range_and_signed():
    x = np.array([-8, 8, -8, 8, -1, 3], np.int8)
    y = np.array([1, 1, 9, 9, -1, 7], np.int8)
    model = make_model("BitShift", {"x": x, "y": y}, 28, direction="RIGHT")
    np.testing.assert_array_equal(run_onnxep(model, {"x": x, "y": y})[0], [-4, 4, -1, 0, -1, 0])
    model = make_model("BitShift", {"x": x, "y": y}, 28, direction="LEFT")
    np.testing.assert_array_equal(run_onnxep(model, {"x": x, "y": y})[0], [-16, 16, 0, 0, 0, -128])


@pytest.mark.parametrize("opset", [9, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, bool])
def test_where(opset, dtype):
    cond = rand(3, 1, 4, dtype=bool)
    check(
        "Where", {"c": cond, "x": rand(2, 1, dtype=dtype), "y": rand(4, dtype=dtype, seed=2)}, opset
    )


def test_clip_6_attributes():
    x = rand(3, 5, low=-5, high=5)
    check("Clip", {"x": x}, 6, min=-1.0, max=2.0)
    check("Clip", {"x": x}, 6, min=-1.0)
    check("Clip", {"x": x}, 6)
    check("Clip", {"x": x.astype(np.float16)}, 6, max=0.5)


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("bounds", ["both", "min", "max", "none", "crossed"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_clip_inputs(opset, bounds, dtype):
    if opset == 11 and dtype == np.int32:
        pytest.skip("Clip-11 is float only")
    lo = np.array(-1 if bounds != "crossed" else 2, dtype=dtype)
    hi = np.array(2 if bounds != "crossed" else -1, dtype=dtype)
    inputs = {
        "x": rand(3, 5, dtype=dtype, low=-5, high=5),
        "lo": lo if bounds in ("both", "min", "crossed") else None,
        "hi": hi if bounds in ("both", "max", "crossed") else None,
    }
    check("Clip", inputs, opset)


CAST_TYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16,
              np.int32, np.uint32, np.int64, np.uint64, bool]  # fmt: skip


@pytest.mark.parametrize("target", CAST_TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("source", CAST_TYPES, ids=lambda t: np.dtype(t).name)
def test_cast_and_cast_like(source, target):
    x = rand(3, 4, dtype=source, low=0, high=40)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(target))
    check("Cast", {"x": x}, 13, to=to)
    check("CastLike", {"x": x, "t": np.zeros(1, dtype=target)}, 15)


@pytest.mark.parametrize("opset", [6, 9, 19, 21, 25])
def test_cast_versions(opset):
    check("Cast", {"x": rand(5, low=-50, high=50)}, opset, to=6)


def test_cast_to_bfloat16_falls_back_to_onnx():
    """A Cast the kernel does not implement runs on onnx's op instead of running wrongly."""
    x = rand(4)
    model = make_model("Cast", {"x": x}, 13, to=TensorProto.BFLOAT16)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    assert hand_written_nodes(session) == {"Cast_0": False}
    got = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(
        got.astype(np.float32), run_evaluator(model, {"x": x})[0].astype(np.float32)
    )


def test_simple_kernels_are_the_numpy_functions_themselves():
    """Per-node overhead: a small Add binds to np.add itself (no wrapper, no validation)."""
    x = rand(4)
    for op, fn in (("Add", np.add), ("Mul", np.multiply), ("Sub", np.subtract)):
        model = make_model(op, {"a": x, "b": x}, 14)
        session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
        assert fn in session.plan._namespace.values(), session.plan.source
    assert ReferenceProvider.kernels.lookup(OpKey("", "Exp", 13)) is not None


def test_large_outputs_are_recycled_not_shared():
    """Large outputs come from the recycling pool, yet two live outputs never share memory."""
    x = rand(300, 300)
    model = make_model("Add", {"a": x, "b": x}, 14)
    session = onnxep.InferenceSession(model.SerializeToString(), providers=["reference"])
    first = session.run(None, {"a": x, "b": x})[0]
    second = session.run(None, {"a": x + 1, "b": x})[0]
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, x + x)
    np.testing.assert_array_equal(second, (x + 1) + x)


def test_softplus_extremes_and_accuracy():
    x = np.concatenate(
        [np.linspace(-100, 100, 4001), [np.inf, -np.inf, np.nan, 0.0, 1e-30, -1e-30]]
    ).astype(np.float32)
    with np.errstate(invalid="ignore"):
        want = np.logaddexp(x.astype(np.float64), 0)
        got = math_ops.softplus(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=3e-7, atol=2e-38)  # below: float32 denormals
