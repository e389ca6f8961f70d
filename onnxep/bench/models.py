"""The models ``onnxep bench`` measures: the built-in set, or model files named by path.

Built in: the ``light_*`` image models shipped inside the onnx package, the BERT-base-like
encoder of :mod:`onnxep.models.transformer`, and a chain of 500 tiny Adds that measures
per-node overhead against a bare Python loop of ``np.add`` calls. Built-in models with
parameters take them after a colon: ``encoder:layers=1,hidden=64,seq=16``.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from onnxep.bench.runner import RunFn, Runner
from onnxep.models import (
    ADD_CHAIN_INPUT,
    build_add_chain,
    build_encoder,
    encoder_inputs,
    light_model_paths,
)

__all__ = ["BenchModel", "builtin_names", "builtin_models", "random_inputs", "resolve_models"]

#: The encoder measured by default: BERT-base width, 4 layers, one sequence of 128 tokens.
ENCODER_DEFAULTS = {"layers": 4, "hidden": 768, "heads": 12, "seq": 128, "batch": 1, "ffn": 3072}
ENCODER_PARAMS = {*ENCODER_DEFAULTS, "opset", "seed"}
ADD_CHAIN_LENGTH = 500


@dataclasses.dataclass
class BenchModel:
    """A model to measure: its bytes and feeds built lazily, and an optional numpy baseline."""

    name: str
    description: str
    load: Callable[[], bytes]
    feeds: Callable[[bytes], dict[str, np.ndarray]]
    baseline: Callable[[], Runner] | None = None
    nodes_per_baseline: int = 0  # nodes the baseline stands for (per-node overhead)


def random_inputs(model: bytes, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded feeds for every non-initializer input; symbolic dims become 1."""
    proto = onnx.load_from_string(model)
    weights = {t.name for t in proto.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in proto.graph.input:
        if value.name in weights:
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        shape = tuple(d.dim_value if d.dim_value > 0 else 1 for d in tensor.shape.dim)
        if dtype.kind == "f":
            feeds[value.name] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[value.name] = rng.random(shape) > 0.5
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def _light(name: str, path: pathlib.Path) -> BenchModel:
    return BenchModel(
        name,
        f"onnx's {path.name} (weights as ConstantOfShape)",
        lambda: path.read_bytes(),
        random_inputs,
    )


def _encoder(params: dict[str, int]) -> BenchModel:
    cfg = {**ENCODER_DEFAULTS, **params}
    name = (
        "bert_encoder"
        if not params
        else "encoder:" + ",".join(f"{k}={v}" for k, v in params.items())
    )
    text = (
        f"BERT-like encoder, {cfg['layers']} layers, hidden {cfg['hidden']}, {cfg['heads']} heads, "
        f"ffn {cfg['ffn']}, batch {cfg['batch']} x seq {cfg['seq']}"
    )
    return BenchModel(
        name,
        text,
        lambda: build_encoder(**cfg).SerializeToString(),
        lambda data: encoder_inputs(onnx.load_from_string(data)),
    )


def _numpy_add_loop(length: int) -> Runner:
    def create(model: bytes) -> RunFn:
        proto = onnx.load_from_string(model)
        const = onnx.numpy_helper.to_array(proto.graph.initializer[0])

        def run(feeds: Any) -> list[np.ndarray]:
            y = feeds[ADD_CHAIN_INPUT]
            for _ in range(length):
                y = np.add(y, const)
            return [y]

        return run

    return Runner(f"numpy loop ({length} np.add)", "baseline", create)


def _add_chain(params: dict[str, int]) -> BenchModel:
    length = params.get("length", ADD_CHAIN_LENGTH)
    name = "add_chain" if not params else f"add_chain:length={length}"
    return BenchModel(
        name,
        f"{length} chained Adds on float32[4]: per-node overhead",
        lambda: build_add_chain(length).SerializeToString(),
        random_inputs,
        baseline=lambda: _numpy_add_loop(length),
        nodes_per_baseline=length,
    )


def builtin_names() -> list[str]:
    """Names of the built-in models, in the order they are measured."""
    return [m.name for m in light_model_paths()] + ["bert_encoder", "add_chain"]


def builtin_models() -> list[BenchModel]:
    """The default model set: light models, the encoder, the Add chain."""
    light = [_light(m.name, m.path) for m in light_model_paths()]
    return [*light, _encoder({}), _add_chain({})]


def _params(text: str, spec: str, allowed: set[str]) -> dict[str, int]:
    params = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not value.strip().isdigit():
            raise ValueError(f"model {spec!r}: expected key=integer parameters, got {item!r}")
        if key not in allowed:
            raise ValueError(f"model {spec!r}: unknown parameter {key!r}; use {sorted(allowed)}")
        params[key] = int(value)
    return params


def resolve_models(specs: list[str]) -> list[BenchModel]:
    """Built-in names (``resnet50``, ``light_vgg19``, ``encoder:layers=2``) or .onnx paths."""
    if not specs:
        return builtin_models()
    light = {m.name: m.path for m in light_model_paths()}
    models = []
    for spec in specs:
        base, _, rest = spec.partition(":")
        key = base.removeprefix("light_")
        if key in light and not rest:
            models.append(_light(key, light[key]))
        elif base in ("bert_encoder", "encoder"):
            models.append(_encoder(_params(rest, spec, ENCODER_PARAMS)))
        elif base == "add_chain":
            models.append(_add_chain(_params(rest, spec, {"length"})))
        elif pathlib.Path(spec).is_file():
            path = pathlib.Path(spec)
            models.append(BenchModel(path.stem, str(path), path.read_bytes, random_inputs))
        else:
            known = ", ".join(builtin_names())
            raise ValueError(f"unknown model {spec!r}: not a file and not one of {known}")
    return models
