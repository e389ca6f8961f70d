"""The ONNX node test cases of the installed onnx, generated once and cached on disk.

``onnx.backend.test.case.node.collect_testcases()`` builds about 1,900 cases by running
numpy code (several seconds, with warnings); the result is written once to
``$ONNXEP_CACHE/node-cases/<onnx version>/cases.pkl`` (default ``~/.cache/onnxep``) and read
back in well under a second by later runs. Values keep their ONNX kind: numpy arrays for
tensors, lists for sequences, dicts for maps, ``None`` for an empty optional.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = [
    "provider_case_params",
    "RANDOM_CASES",
    "NodeCase",
    "assert_matches",
    "cache_dir",
    "load_cases",
    "normalize",
    "run_case",
]

_FORMAT = 1  # bump when the pickled layout changes

#: Cases whose expected outputs are draws of a random generator (onnx's generator says so:
#: "non-deterministic ... even if a seed is specified"). Their values cannot be compared;
#: :func:`run_case` checks shape, dtype and that every value is 0 or 1 instead.
RANDOM_CASES = re.compile(r"^test_bernoulli")


@dataclasses.dataclass(frozen=True)
class NodeCase:
    """One ONNX node test case: a model and its (inputs, expected outputs) data sets."""

    name: str
    model: bytes
    data_sets: tuple[tuple[list[Any], list[Any]], ...]
    rtol: float
    atol: float

    def model_proto(self) -> onnx.ModelProto:
        """The model parsed into a ModelProto."""
        return onnx.load_model_from_string(self.model)


def cache_dir() -> pathlib.Path:
    """Where the cases of this onnx version are cached."""
    root = os.environ.get("ONNXEP_CACHE") or os.path.join("~", ".cache", "onnxep")
    return pathlib.Path(root).expanduser() / "node-cases" / onnx.__version__


def normalize(value: Any) -> Any:
    """A data-set value as onnxep takes and returns it.

    TensorProto and numpy scalars become arrays; lists (sequences), dicts (maps) and None
    (an empty optional) keep their shape with their elements normalised.
    """
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def _generate() -> list[NodeCase]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow and divide by zero on purpose
        raw = collect_testcases()
    return [
        NodeCase(
            case.name,
            case.model.SerializeToString(),
            tuple(
                ([normalize(v) for v in inputs], [normalize(v) for v in outputs])
                for inputs, outputs in case.data_sets
            ),
            float(case.rtol),
            float(case.atol),
        )
        for case in raw
    ]


def _write(path: pathlib.Path, cases: list[NodeCase]) -> None:
    """Write atomically, so concurrent test runs never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(
        (_FORMAT, [dataclasses.astuple(c) for c in cases]), protocol=pickle.HIGHEST_PROTOCOL
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cases-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: pathlib.Path) -> list[NodeCase] | None:
    try:
        with path.open("rb") as handle:
            version, rows = pickle.load(handle)  # our own cache file
    except Exception:  # unreadable, truncated, or pickled by other numpy/ml_dtypes versions
        return None
    if version != _FORMAT:
        return None
    return [NodeCase(*row) for row in rows]


_loaded: list[NodeCase] | None = None


def load_cases() -> list[NodeCase]:
    """Every node case of the installed onnx, sorted by name (generated on first use)."""
    global _loaded
    if _loaded is None:
        path = cache_dir() / "cases.pkl"
        cases = _read(path)
        if cases is None:
            cases = _generate()
            try:
                _write(path, cases)
            except OSError as exc:  # a read-only home still runs the suite, only slower
                print(f"onnxep: could not cache the node cases in {path}: {exc}", file=sys.stderr)
        _loaded = sorted(cases, key=lambda c: c.name)
    return _loaded


def assert_matches(actual: Any, expected: Any, rtol: float, atol: float, where: str = "") -> None:
    """Compare one output with onnx's tolerances; exact for ints, bools and strings.

    Sequences compare element by element, an empty optional must be None, NaN equals NaN,
    and shapes and dtypes must match exactly.
    """
    if expected is None:
        assert actual is None, f"{where}: expected an empty optional, got {type(actual).__name__}"
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), (
            f"{where}: expected a sequence, got {type(actual).__name__}"
        )
        assert len(actual) == len(expected), (
            f"{where}: {len(actual)} elements, expected {len(expected)}"
        )
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, rtol, atol, f"{where}[{i}]")
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a map, got {type(actual).__name__}"
        assert sorted(actual) == sorted(expected), (
            f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        )
        for key in expected:
            assert_matches(actual[key], expected[key], rtol, atol, f"{where}[{key!r}]")
        return
    assert isinstance(actual, np.ndarray), (
        f"{where}: expected an array, got {type(actual).__name__}"
    )
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
    kind = expected.dtype.kind
    if kind in "biuOUSM":
        np.testing.assert_array_equal(actual, expected, err_msg=where, strict=True)
    elif kind in "fc" and expected.dtype.itemsize >= 2:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=where)
    elif expected.dtype.name.startswith(("int", "uint")):  # ml_dtypes int4, uint4, int2...
        np.testing.assert_array_equal(actual.astype(np.int32), expected.astype(np.int32), where)
    else:  # ml_dtypes floats (bfloat16, float8, float4): compare as float32
        wide_rtol = max(rtol, 2**-6) if expected.dtype.name == "bfloat16" else rtol
        np.testing.assert_allclose(
            actual.astype(np.float32),
            expected.astype(np.float32),
            rtol=wide_rtol,
            atol=atol,
            err_msg=where,
        )


def run_case(case: NodeCase, providers: Sequence[Any] | None = None) -> None:
    """Run one case through ``onnxep.InferenceSession`` and compare every output.

    numpy's floating-point warnings are silenced while running: onnxruntime computes
    inf/NaN quietly, and the values themselves are what is compared.
    """
    import onnxep

    session = onnxep.InferenceSession(case.model, providers=providers)
    names = [arg.name for arg in session.get_inputs()]
    random = RANDOM_CASES.match(case.name) is not None
    for inputs, expected in case.data_sets:
        with np.errstate(all="ignore"):
            outputs = session.run(None, dict(zip(names, inputs, strict=True)))
        assert len(outputs) == len(expected), f"{len(outputs)} outputs, expected {len(expected)}"
        for i, (actual, wanted) in enumerate(zip(outputs, expected)):
            where = f"output {i} ({session.get_outputs()[i].name})"
            if random:
                _assert_bernoulli(actual, wanted, where)
            else:
                assert_matches(actual, wanted, case.rtol, case.atol, where)


def _assert_bernoulli(actual: Any, expected: np.ndarray, where: str) -> None:
    assert isinstance(actual, np.ndarray), f"{where}: got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
    assert np.isin(actual, (0, 1)).all(), f"{where}: values other than 0 and 1: {actual}"


def provider_case_params(provider: Any, known: dict[str, str] | None = None) -> list[Any]:
    """pytest params ``(case, labels)``: every node case with nodes ``provider`` claims.

    ``labels`` are the claimed nodes (a test asserts they really ran there); a case named
    in ``known`` is marked as a strict expected failure with its reason.
    """
    import pytest

    from onnxep.testing import claimed_labels

    ops = {kernel.key.op_type for kernel in provider.kernels}
    params = []
    for case in load_cases():
        model = case.model_proto()
        if not any(n.op_type in ops for n in model.graph.node):
            continue  # cheap filter before loading the model
        labels = claimed_labels(provider, model)
        if not labels:
            continue
        reason = (known or {}).get(case.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(case, labels, id=case.name, marks=marks))
    return params
