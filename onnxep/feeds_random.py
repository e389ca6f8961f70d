"""Seeded random feeds built from a session's input metadata (for the CLI and benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxep.errors import InvalidArgument

__all__ = ["random_feeds"]

_DTYPES = {
    "float": np.float32,
    "double": np.float64,
    "float16": np.float16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}


def random_feeds(
    session: Any, dims: Mapping[str, int] | None = None, seed: int = 0, default_dim: int = 1
) -> dict[str, np.ndarray]:
    """One random array per input; symbolic dims from ``dims`` (else ``default_dim``)."""
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    feeds = {}
    for arg in session.get_inputs():
        if not arg.type.startswith("tensor("):
            raise InvalidArgument(f"input {arg.name!r} is a {arg.type}; give it explicitly")
        elem = arg.type[len("tensor(") : -1]
        if elem not in _DTYPES:
            raise InvalidArgument(f"input {arg.name!r}: no random generator for {arg.type}")
        shape = tuple(_dim(arg.name, d, dims, default_dim) for d in arg.shape)
        dtype = np.dtype(_DTYPES[elem])
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.random(shape) > 0.5
        else:
            feeds[arg.name] = rng.integers(0, 8, shape).astype(dtype)
    return feeds


def _dim(name: str, dim: Any, dims: Mapping[str, int], default: int) -> int:
    if isinstance(dim, int) and dim > 0:
        return dim
    if isinstance(dim, str) and dim in dims:
        return int(dims[dim])
    return default


def parse_dims(items: list[str] | None) -> dict[str, int]:
    """``["batch=4", "seq=128"]`` -> ``{"batch": 4, "seq": 128}``."""
    result = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidArgument(f"--dim expects name=value with an integer value, got {item!r}")
        result[name.strip()] = int(value)
    return result
