"""Provider tests: the ``gpu`` marker's skip logic, and the CuPy provider emulated on numpy.

A test marked ``@pytest.mark.gpu`` runs only where ``CuPyProvider.is_available()`` holds (CuPy
imports *and* a CUDA device answers); elsewhere it is skipped with that reason, or fails
when ``ONNXEP_REQUIRE_GPU=1`` (set it on a GPU runner so a broken driver cannot pass as a
skip).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

import onnxep
from onnxep.provider import Support


def _gpu_status() -> tuple[bool, str]:
    try:
        from onnxep_cupy import CuPyProvider
    except Exception as exc:  # the package itself failing to import is a real error
        return False, f"onnxep_cupy failed to import: {type(exc).__name__}: {exc}"
    support = CuPyProvider.is_available()
    return support.ok, support.reason


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, with ``ONNXEP_REQUIRE_GPU=1``, fail) ``gpu`` tests without a usable GPU."""
    if item.get_closest_marker("gpu") is None:
        return
    ok, reason = _gpu_status()
    if ok:
        return
    if os.environ.get("ONNXEP_REQUIRE_GPU") == "1":
        pytest.fail(f"ONNXEP_REQUIRE_GPU=1 but no usable GPU: {reason}", pytrace=False)
    pytest.skip(f"no usable GPU: {reason}")


def _emulated_class() -> type[Any]:
    from onnxep_cupy import CuPyProvider

    class EmulatedCuPyProvider(CuPyProvider):
        """The CuPy provider's compiler and kernels on numpy arrays ("device" = host memory).

        Everything but CuPy itself runs: placement, folding, residency, fusion (the fused
        expressions are evaluated with numpy), the kernels' array code.
        """

        name = "CuPyEmulatedExecutionProvider"
        device = "cuda-emulated"

        @classmethod
        def is_available(cls) -> Support:
            return Support.yes()

        def device_context(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

        def to_device(self, array: Any) -> Any:
            return array

        def to_host(self, array: Any) -> Any:
            return array

    return EmulatedCuPyProvider


@pytest.fixture
def emulated_cupy() -> Iterator[str]:
    """The name of the numpy-emulated CuPy provider, registered for the test."""
    cls = _emulated_class()
    onnxep.register_provider(cls)
    yield cls.name
    onnxep.unregister_provider(cls.name)
