"""Every installed provider's kernels declare the ONNX schema defaults of their attributes."""

from __future__ import annotations

from typing import Any

import pytest

from onnxep import discovery
from onnxep.registry import KernelRegistry

from .schema_defaults import default_mismatches


def _providers() -> list[Any]:
    params = []
    for name, entry in sorted(discovery.entries().items()):
        cls = entry.load()
        if cls is None:
            params.append(pytest.param(None, id=name, marks=pytest.mark.skip(reason=entry.error)))
            continue
        status = entry.availability()
        marks = [] if status else [pytest.mark.skip(reason=f"{name} unavailable: {status.reason}")]
        params.append(pytest.param(cls, id=name, marks=marks))
    return params


@pytest.mark.parametrize("provider", _providers())
def test_kernel_defaults_match_schema(provider):
    problems = default_mismatches(provider.kernels)
    assert not problems, "\n".join(problems)


def test_reference_registry_is_checked():
    from onnxep.reference import ReferenceProvider

    assert len(ReferenceProvider.kernels) > 300


def test_a_wrong_default_is_reported():
    """The check can fail: a Softmax-13 kernel with opset 1's default axis is caught."""
    registry = KernelRegistry()

    @registry.register("Softmax", versions=(13,))
    def softmax(x, *, axis=1):
        return x

    @registry.register("LeakyRelu", versions=(16,))
    def leaky_relu(x):
        return x

    problems = default_mismatches(registry)
    assert "Softmax-13: axis: 1 != -1" in problems
    assert any(p.startswith("LeakyRelu-16: attribute alpha has no default") for p in problems)
