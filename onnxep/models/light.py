"""The ``light_*`` models shipped inside the onnx package (its backend test data).

They are the classic image models (ResNet-50, VGG-19, DenseNet-121, Inception v1/v2,
SqueezeNet, ShuffleNet, AlexNet, ZFNet-512) with their weights replaced by
``ConstantOfShape`` nodes, so each file is a few kilobytes yet runs the full computation.
"""

from __future__ import annotations

import dataclasses
import pathlib

import onnx

__all__ = ["LightModel", "light_model_paths"]


@dataclasses.dataclass(frozen=True)
class LightModel:
    """One ``light_*.onnx`` file and the shapes of the inputs to feed it."""

    name: str
    path: pathlib.Path
    input_shapes: dict[str, tuple[int, ...]]


def light_dir() -> pathlib.Path:
    """The folder of the light models inside the installed onnx package."""
    return pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def light_model_paths() -> list[LightModel]:
    """Every ``light_*.onnx`` model of the installed onnx package, sorted by name.

    Empty when the onnx build ships without its test data.
    """
    models = []
    for path in sorted(light_dir().glob("light_*.onnx")):
        proto = onnx.load(str(path), load_external_data=False)
        weights = {t.name for t in proto.graph.initializer}
        shapes = {
            v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
            for v in proto.graph.input
            if v.name not in weights
        }
        models.append(LightModel(path.stem.removeprefix("light_"), path, shapes))
    return models
