"""Checks that a registry's kernels declare each ONNX attribute with the schema's default.

Works on any provider's :class:`~onnxep.registry.KernelRegistry`. A plain kernel's defaults
are read from its signature; a factory kernel (``factory=True``) declares them in a
``defaults`` mapping on the factory (see ``onnxep.reference._common.factory``), or is
reported as unverifiable.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import onnx
from onnx import helper

from onnxep.registry import Kernel, KernelRegistry, schema_of

__all__ = ["default_mismatches", "schema_defaults"]


def _plain(value: Any) -> Any:
    """A schema default as kernels receive it: str for bytes, tuples for lists."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def schema_defaults(kernel: Kernel) -> dict[str, Any]:
    """The attributes with a default in the kernel's schema, and their defaults."""
    schema = schema_of(kernel.key)
    if schema is None:
        return {}
    return {
        name: _plain(helper.get_attribute_value(attr.default_value))
        for name, attr in schema.attributes.items()
        if attr.default_value.type != onnx.AttributeProto.UNDEFINED
    }


def _declared(kernel: Kernel) -> tuple[dict[str, Any], bool] | None:
    """(name -> default, takes **kwargs) of the kernel, or None when it cannot be known."""
    if kernel.factory:
        defaults = getattr(kernel.fn, "defaults", None)
        return (dict(defaults), False) if defaults is not None else None
    try:
        params = inspect.signature(kernel.fn).parameters
    except (TypeError, ValueError):
        return None
    declared = {
        name: p.default
        for name, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty
    }
    kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return declared, kwargs


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, (float, int)):
        return bool(np.float32(expected) == np.float32(actual))
    if isinstance(expected, tuple) and isinstance(actual, (tuple, list)):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    return bool(expected == actual)


def default_mismatches(registry: KernelRegistry) -> list[str]:
    """Every kernel whose attribute defaults differ from its schema's, as readable lines."""
    problems = []
    for kernel in registry:
        expected = schema_defaults(kernel)
        if not expected:
            continue
        found = _declared(kernel)
        if found is None:
            problems.append(f"{kernel.key}: defaults cannot be read from {kernel.fn!r}")
            continue
        declared, kwargs = found
        for name, default in sorted(expected.items()):
            if name not in declared:
                if not kwargs and not kernel.factory:
                    problems.append(
                        f"{kernel.key}: attribute {name} has no default (schema: {default!r})"
                    )
                elif kernel.factory:
                    problems.append(
                        f"{kernel.key}: factory does not declare {name} (schema: {default!r})"
                    )
                continue
            if not _same(default, declared[name]):
                problems.append(f"{kernel.key}: {name}: {declared[name]!r} != {default!r}")
    return problems
