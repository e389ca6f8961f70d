"""Models shipped with onnxep for tests, demos and benchmarks, built in code or found on disk."""

from __future__ import annotations

from onnxep.models.chain import ADD_CHAIN_INPUT, build_add_chain
from onnxep.models.light import LightModel, light_model_paths
from onnxep.models.transformer import ENCODER_INPUT, ENCODER_OUTPUT, build_encoder, encoder_inputs

__all__ = [
    "ADD_CHAIN_INPUT",
    "ENCODER_INPUT",
    "ENCODER_OUTPUT",
    "LightModel",
    "build_add_chain",
    "build_encoder",
    "encoder_inputs",
    "light_model_paths",
]
