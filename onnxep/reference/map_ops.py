"""The ``ai.onnx.ml`` ops onnx's reference implementation lacks: ZipMap, CastMap and
CategoryMapper (scikit-learn classifiers exported by skl2onnx end in ZipMap).

Behaviour is onnxruntime's (checked against 1.31): ZipMap gives one dict per row (one for a
1-D input), labels as Python ints or strs and scores as Python floats; CastMap orders a
dense map by key, places a sparse one by key and drops keys at or past ``max_map``, writes
floats as strings with C's ``%f`` and fills missing sparse strings with onnxruntime's
literal ``"0.f"``; CategoryMapper's defaults are ``"_Unused"`` and -1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxep.reference._registry import kernels

__all__: list[str] = []

ML = "ai.onnx.ml"
#: What onnxruntime writes for a key missing from a sparse map cast to strings.
MISSING_STRING = "0.f"


@kernels.register("ZipMap", versions=(1,), domain=ML)
def zip_map(
    X: Any,
    *,
    classlabels_int64s: Sequence[int] | None = None,
    classlabels_strings: Sequence[str] | None = None,
) -> list[dict[Any, float]]:
    """Each row of scores as a dict from class label to score."""
    labels = list(classlabels_strings if classlabels_strings is not None else classlabels_int64s)
    rows = np.asarray(X, dtype=np.float32)
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != len(labels):
        raise ValueError(
            f"ZipMap expects scores of shape (N, {len(labels)}) for its {len(labels)} class "
            f"labels, got {tuple(np.shape(X))}"
        )
    return [dict(zip(labels, row)) for row in rows.tolist()]


def _cast(values: list[Any], cast_to: str) -> np.ndarray:
    if cast_to == "TO_STRING":
        return np.array([v if isinstance(v, str) else f"{v:f}" for v in values], dtype=object)
    if cast_to == "TO_INT64":  # C++'s cast truncates toward zero; strings are parsed
        return np.array([int(float(v)) if isinstance(v, str) else int(v) for v in values])
    return np.array([float(v) for v in values], dtype=np.float32)


@kernels.register("CastMap", versions=(1,), domain=ML)
def cast_map(
    X: Mapping[int, Any], *, cast_to: str = "TO_FLOAT", map_form: str = "DENSE", max_map: int = 1
) -> np.ndarray:
    """A map from int64 keys as a (1, N) tensor: its values in key order (DENSE), or each
    value at its key's position among ``max_map`` (SPARSE, missing keys zero)."""
    if not isinstance(X, Mapping):
        raise TypeError(f"CastMap expects a map (dict) input, got {type(X).__name__}")
    keys = sorted(X)
    if keys and keys[0] < 0:
        raise ValueError(f"CastMap: negative keys are not permitted, got {keys[0]}")
    if map_form == "DENSE":
        return _cast([X[k] for k in keys], cast_to).reshape(1, -1)
    if map_form != "SPARSE":
        raise ValueError(f"CastMap: map_form must be DENSE or SPARSE, got {map_form!r}")
    placed = [k for k in keys if k < max_map]
    values = _cast([X[k] for k in placed], cast_to)
    if cast_to == "TO_STRING":
        out = np.full(max_map, MISSING_STRING, dtype=object)
    else:
        out = np.zeros(max_map, dtype=values.dtype if values.size else _cast([], cast_to).dtype)
    out[placed] = values
    return out.reshape(1, -1)


@kernels.register("CategoryMapper", versions=(1,), domain=ML)
def category_mapper(
    X: Any,
    *,
    cats_int64s: Sequence[int] = (),
    cats_strings: Sequence[str] = (),
    default_int64: int = -1,
    default_string: str = "_Unused",
) -> np.ndarray:
    """Strings to int64s or int64s to strings through the paired category lists; unknown
    values map to the default."""
    x = np.asarray(X)
    if x.dtype.kind in "OUS":
        table: dict[Any, Any] = dict(zip(cats_strings, cats_int64s))
        flat = [table.get(v, default_int64) for v in x.reshape(-1).tolist()]
        return np.array(flat, dtype=np.int64).reshape(x.shape)
    table = dict(zip(cats_int64s, cats_strings))
    flat = [table.get(v, default_string) for v in x.reshape(-1).tolist()]
    return np.array(flat, dtype=object).reshape(x.shape)
