"""Checking feeds before anything runs: names, dtypes, ranks, fixed dimensions.

Messages follow onnxruntime's wording and always name the input, what was expected and
what came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxep.errors import InvalidArgument
from onnxep.graph import ValueType
from onnxep.ort_value import unwrap

__all__ = ["check_feeds", "to_value"]


def to_value(name: str, value: Any, expected: ValueType) -> Any:
    """The feed as onnxep passes it on: numpy for tensors, lists for sequences (an
    OrtValue gives what it holds)."""
    value = unwrap(value)
    if expected.kind in ("sequence", "map"):
        return value
    if expected.kind == "optional":
        if value is None:
            return None
        return to_value(name, value, expected.elem) if expected.elem else value
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__cuda_array_interface__") or (
        hasattr(value, "__dlpack__") and not hasattr(value, "__array__")
    ):
        return value  # device-resident; the plan leaves it where it is
    if isinstance(value, list) and expected.dtype is not None:
        return _from_list(value, expected)
    if isinstance(value, (np.generic, int, float, bool, str, list, tuple)) or hasattr(
        value, "__array__"
    ):
        return np.asarray(value)
    raise InvalidArgument(f"input {name!r}: expected a numpy array, got {type(value).__name__}")


def _from_list(value: list[Any], expected: ValueType) -> np.ndarray:
    """A list feed in the input's element type, as onnxruntime builds it.

    Unlike onnxruntime, floats are not truncated to integers: that is refused by the dtype check.
    """
    array = np.asarray(value)
    to = expected.dtype
    if (
        array.size == 0
        or np.can_cast(array.dtype, to, casting="same_kind")
        or (array.dtype.kind in "iu" and to.kind in "iub")  # ints to any int or bool
    ):
        return array.astype(to, copy=False)
    return array  # the dtype check names what came and what was expected


def check_feeds(
    feeds: Mapping[str, Any],
    required: Sequence[str],
    optional: Sequence[str],
    types: Mapping[str, ValueType],
) -> dict[str, Any]:
    """Validate and convert feeds; raise :class:`InvalidArgument` naming the problem."""
    if not isinstance(feeds, Mapping):
        raise InvalidArgument(
            f"input_feed must be a dict of input name to array, got {type(feeds).__name__}"
        )
    known = set(required) | set(optional)
    for name in feeds:
        if name not in known:
            raise InvalidArgument(
                f"Invalid input name: {name!r}; the model's inputs are {sorted(required)}"
            )
    missing = [n for n in required if n not in feeds]
    if missing:
        raise InvalidArgument(
            f"Required inputs ({missing}) are missing from input feed ({list(feeds)})."
        )
    checked = {}
    for name, raw in feeds.items():
        expected = types[name]
        value = to_value(name, raw, expected)
        if expected.kind in ("tensor", "unknown") and hasattr(value, "dtype"):
            _check_tensor(name, value, expected)
        checked[name] = value
    return checked


def _type_text(dtype: np.dtype) -> str:
    from onnxep.graph import tensor_type_text

    try:
        return tensor_type_text(np.dtype(dtype))
    except (TypeError, ValueError, KeyError):
        return f"tensor({dtype})"


def _check_tensor(name: str, value: Any, expected: ValueType) -> None:
    actual = np.dtype(value.dtype)
    if (
        expected.dtype is not None
        and actual != expected.dtype
        and not (expected.dtype == object and actual.kind in "US")  # str arrays for strings
    ):
        raise InvalidArgument(
            f"Unexpected input data type for input {name!r}. "
            f"Actual: ({_type_text(value.dtype)}) , expected: ({expected.text})"
        )
    if expected.shape is None:
        return
    shape = tuple(value.shape)
    if len(shape) != len(expected.shape):
        raise InvalidArgument(
            f"Invalid rank for input: {name} Got: {len(shape)} Expected: {len(expected.shape)} "
            f"(shape got {list(shape)}, expected {list(expected.shape)}). "
            "Please fix either the inputs/outputs or the model."
        )
    wrong = [
        f" index: {i} Got: {got} Expected: {want}"
        for i, (got, want) in enumerate(zip(shape, expected.shape, strict=True))
        if isinstance(want, int) and want > 0 and got != want
    ]
    if wrong:
        raise InvalidArgument(
            f"Got invalid dimensions for input: {name} for the following indices\n"
            + "\n".join(wrong)
            + "\n Please fix either the inputs/outputs or the model."
        )
