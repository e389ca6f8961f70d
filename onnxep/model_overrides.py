"""What ``SessionOptions`` changes in a model as it loads: initializers given in memory
(``add_initializer``, ``add_external_initializers``) and free input dimensions fixed by name
or denotation (``add_free_dimension_override_by_name/_by_denotation``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from onnxep.device_values import host_value
from onnxep.errors import InvalidArgument

__all__ = ["fix_free_dims", "replace_initializers"]


def replace_initializers(model: onnx.ModelProto, values: Mapping[str, Any]) -> None:
    """Put each value in place of the main graph's initializer of that name (its data may
    be external: the value replaces the reference, no file is read for it)."""
    tensors = {t.name: t for t in model.graph.initializer}
    for name, value in values.items():
        tensor = tensors.get(name)
        if tensor is None:
            raise InvalidArgument(
                f"add_initializer: the model has no initializer named {name!r} "
                f"(it has {len(tensors)})"
            )
        array = np.asarray(host_value(value))
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        if array.dtype != dtype or list(array.shape) != list(tensor.dims):
            raise InvalidArgument(
                f"add_initializer: {name!r} is {dtype} {list(tensor.dims)} in the model, "
                f"got {array.dtype} {list(array.shape)}"
            )
        tensor.CopyFrom(numpy_helper.from_array(array, name))


def fix_free_dims(model: onnx.ModelProto, sizes: Mapping[tuple[str, str], int]) -> None:
    """Give the graph inputs' symbolic dims their overridden sizes; ``sizes`` maps
    ``("name", dim_param)`` or ``("denotation", denotation)`` to a size."""
    for value in model.graph.input:
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            size = sizes.get(("denotation", dim.denotation)) if dim.denotation else None
            if size is None and dim.HasField("dim_param"):
                size = sizes.get(("name", dim.dim_param))
            if size is not None:
                dim.dim_value = size  # clears dim_param (a oneof)
