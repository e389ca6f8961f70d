"""``NodeArg`` and ``ModelMetadata``: what onnxruntime's getters return."""

from __future__ import annotations

import dataclasses

import onnx

from onnxep.graph import ValueType

__all__ = ["ModelMetadata", "NodeArg"]

#: onnxruntime reports a model without ``model_version`` as version INT64_MAX.
_UNSET_VERSION = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class NodeArg:
    """A graph input or output: name, shape (ints, symbols as str, None) and type string."""

    name: str
    type: str
    shape: list[int | str | None]

    @classmethod
    def of(cls, name: str, vt: ValueType) -> NodeArg:
        """Build from a value's type."""
        return cls(name, vt.text, list(vt.shape) if vt.shape is not None else [])

    def __str__(self) -> str:
        return f"NodeArg(name='{self.name}', type='{self.type}', shape={self.shape})"


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """The model's metadata, as ``onnxruntime.ModelMetadata``."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict[str, str]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> ModelMetadata:
        """Read from a ModelProto."""
        return cls(
            model.producer_name,
            model.graph.name,
            model.domain,
            model.doc_string,
            model.graph.doc_string,
            model.model_version if model.HasField("model_version") else _UNSET_VERSION,
            {p.key: p.value for p in model.metadata_props},
        )
