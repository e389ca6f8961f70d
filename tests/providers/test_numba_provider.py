"""The numba provider as a plugin: discovery, import isolation, availability, threads, cache,
and its kernels' signatures against the ONNX schemas."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import onnx
import pytest

import onnxep
from onnxep.registry import schema_of
from onnxep_numba import NumbaProvider, kernels

NUMBA = "NumbaExecutionProvider"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_importing_onnxep_does_not_import_numba() -> None:
    result = _python(
        """
        import sys, onnxep
        onnxep.get_all_providers()
        assert "numba" not in sys.modules and "onnxep_numba" not in sys.modules, "imported"
        import onnxep_numba
        assert "numba" in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_unavailable_without_numba_with_the_reason() -> None:
    result = _python(
        """
        import sys
        sys.modules["numba"] = None  # import numba raises ImportError
        from onnxep_numba import NumbaProvider
        support = NumbaProvider.is_available()
        assert not support.ok and "numba" in support.reason, support
        print(support.reason)
        """
    )
    assert result.returncode == 0, result.stderr


def test_discovered_by_name_and_alias() -> None:
    assert NUMBA in onnxep.get_available_providers()
    assert NumbaProvider.alias() == "numba"
    assert NumbaProvider.is_available().ok


def test_configure_sets_and_clamps_numba_threads() -> None:
    before = numba.get_num_threads()
    try:
        provider = NumbaProvider()
        provider.configure(threads=1)
        assert numba.get_num_threads() == 1
        provider.configure(threads=10_000)
        assert provider.threads == numba.config.NUMBA_NUM_THREADS
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)


def test_session_thread_option_reaches_numba() -> None:
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", 1, [3])],
        [onnx.helper.make_tensor_value_info("y", 1, [3])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 14)])
    model.ir_version = 10
    options = onnxep.SessionOptions()
    options.intra_op_num_threads = 1
    before = numba.get_num_threads()
    try:
        session = onnxep.InferenceSession(model.SerializeToString(), options, providers=["numba"])
        assert session.providers[0].threads == 1
        assert session.run(None, {"x": np.array([-1, 0, 2], np.float32)})[0].tolist() == [0, 0, 2]
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("preset", [None, "777"])
def test_openmp_workers_spin_briefly_unless_the_user_chose(preset: str | None) -> None:
    """libgomp's default spin (milliseconds) starves another provider's thread pool in the
    same chain; the provider shortens it before numba loads libgomp, and a value already in
    the environment wins."""
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    result = subprocess.run(
        [sys.executable, "-c", "import os, onnxep_numba; print(os.environ['GOMP_SPINCOUNT'])"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    from onnxep_numba import GOMP_SPINCOUNT

    assert result.stdout.strip() == (preset or GOMP_SPINCOUNT)


def test_runs_without_a_writable_cache_folder(tmp_path: object) -> None:
    """No writable cache: kernels compile in memory, with no error and no warning."""
    result = _python(
        """
        import warnings
        warnings.simplefilter("error")
        import numpy as np
        from onnxep_numba import _jit, fusion
        from onnxep_numba._ewops import SPECS
        assert _jit.cache_dir() is None, _jit.cache_dir()
        k = fusion.fused_kernel(fusion.single_op(SPECS["add"], ["float32", "float32"], {}))
        (y,) = k(np.ones(3, np.float32), np.ones(3, np.float32))
        assert y.tolist() == [2, 2, 2]
        from onnxep_numba.reduce import reduce
        assert reduce(np.ones((2, 3), np.float32), (1,), 0, 0, 0).tolist() == [3, 3]
        """,
        NUMBA_CACHE_DIR="/proc/onnxep-not-writable",
        HOME="/proc/onnxep-not-writable",
        XDG_CACHE_HOME="/proc/onnxep-not-writable",
    )
    assert result.returncode == 0, result.stderr


def test_cached_kernels_are_dropped_when_the_package_sources_change(tmp_path: object) -> None:
    """numba checks a cached kernel against its own file only; a changed helper in another
    module must not leave stale machine code behind: the folder's cache files go."""
    from types import SimpleNamespace

    from onnxep_numba import _jit

    folder = tmp_path  # type: ignore[assignment]
    stale = [folder / "pool._pool2d-52.py311.nbi", folder / "pool._pool2d-52.py311.1.nbc"]
    for path in stale:
        path.write_bytes(b"old")
    (folder / _jit.STAMP_FILE).write_text("digest of older sources")
    dispatcher = SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(folder)))
    assert _jit._fresh_cache(dispatcher) is dispatcher
    assert not any(path.exists() for path in stale)
    assert (folder / _jit.STAMP_FILE).read_text() == _jit._sources_digest()
    kept = folder / "kernel-1.py311.nbi"
    kept.write_bytes(b"current")
    _jit._checked.discard(str(folder))
    _jit._fresh_cache(dispatcher)  # same sources: nothing removed
    assert kept.exists()


def _kernels() -> list[object]:
    return sorted(kernels, key=lambda k: str(k.key))


@pytest.mark.parametrize("kernel", _kernels(), ids=lambda k: str(k.key))
def test_kernel_signature_matches_the_schema(kernel: object) -> None:
    """Attributes are keyword-only with the schema's defaults; inputs positional, in order."""
    schema = schema_of(kernel.key)
    assert schema is not None and schema.since_version == kernel.key.since_version, kernel.key
    params = inspect.signature(kernel.fn).parameters
    for name, attr in schema.attributes.items():
        if attr.default_value.type == onnx.AttributeProto.UNDEFINED:
            continue
        assert name in params, f"{kernel.key}: attribute {name} is not a parameter"
        assert params[name].kind == inspect.Parameter.KEYWORD_ONLY, f"{kernel.key}: {name}"
        default = onnx.helper.get_attribute_value(attr.default_value)
        default = default.decode() if isinstance(default, bytes) else default
        assert params[name].default == default, (
            f"{kernel.key}: {name}={params[name].default!r} != {default!r}"
        )
    positional = [p for p in params.values() if p.kind != inspect.Parameter.KEYWORD_ONLY]
    names = [i.name for i in schema.inputs]
    for p, expected in zip(positional, names):
        assert p.name in (expected, expected.rstrip("*")), (
            f"{kernel.key}: input {p.name} != {expected}"
        )
