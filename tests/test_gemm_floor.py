"""benchmarks/gemm_floor.py: the matrix products it reads off a model, and its report."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from graphs import model, node

from onnxep.models import light_model_paths

SCRIPT = pathlib.Path(__file__).parents[1] / "benchmarks" / "gemm_floor.py"


@pytest.fixture(scope="module")
def gemm_floor():
    spec = importlib.util.spec_from_file_location("gemm_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_products_follow_the_reference_lowering(gemm_floor):
    weights = {
        "w": np.zeros((8, 2, 3, 3), np.float32),  # grouped conv: 2 groups of 4 outputs
        "g": np.zeros((6, 10), np.float32),  # Gemm B, transposed
        "m": np.zeros((4, 6, 5), np.float32),
    }
    proto = model(
        [
            node("Conv", ["x", "w"], ["c"], group=2, pads=[1, 1, 1, 1]),
            node("Gemm", ["a", "g"], ["y"], transB=1),
            node("MatMul", ["b", "m"], ["z"]),
        ],
        {"x": [3, 4, 7, 5], "a": [9, 10], "b": [4, 2, 6]},
        ["c", "y", "z"],
        initializers=weights,
    )
    assert list(gemm_floor.matrix_products(proto)) == [
        (3 * 2, 4, 2 * 9, 7 * 5),
        (1, 9, 10, 6),
        (4, 2, 6, 5),
    ]


def test_report_on_a_light_model(gemm_floor, tmp_path):
    pytest.importorskip("onnxruntime", reason="the floor is compared with onnxruntime")
    if not any(m.name == "squeezenet" for m in light_model_paths()):
        pytest.skip("this onnx build ships without its light models")
    out = tmp_path / "floor"
    args = ["--models", "squeezenet", "--repeat", "1", "--out", str(out)]
    assert gemm_floor.main(args) == 0
    row = json.loads(out.with_suffix(".json").read_text())["models"][0]
    assert row["model"] == "squeezenet" and row["products"] == 26
    assert row["gflop"] == pytest.approx(0.70, abs=0.01)  # SqueezeNet 1.1 at 224x224
    assert "| squeezenet |" in out.with_suffix(".md").read_text()
