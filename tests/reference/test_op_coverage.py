"""Every ai.onnx and ai.onnx.ml schema version the installed onnx defines has a reference
implementation: a hand-written kernel, or onnx's own reference op. The gaps are listed, each
with its reason; onnxruntime has no kernel for any of them either."""

from __future__ import annotations

import onnx

from onnxep.reference import _kernels  # noqa: F401  (registers the hand-written kernels)
from onnxep.reference._registry import kernels
from onnxep.reference.onnx_ops import _loadable
from onnxep.registry import OpKey

#: (domain, op, since_version) -> why it does not run. onnxruntime registers none of them.
KNOWN_GAPS = {
    (
        "",
        "BatchNormalization",
        1,
    ): "opset-1 form (consumed_inputs); onnx and onnxruntime start at 6/7",
    ("", "Clip", 1): "opset-1 form (consumed_inputs); onnx and onnxruntime start at 6",
    ("", "Dropout", 1): "opset-1 form; onnx and onnxruntime start at 7",
    ("", "Dropout", 6): "opset-6 form; onnx and onnxruntime start at 7",
    ("", "Gemm", 1): "opset-1 form (broadcast attribute); onnx and onnxruntime start at 6/7",
    ("", "GlobalLpPool", 1): "opset-1 form (p as float); onnx and onnxruntime start at 2",
    ("", "RNN", 1): "opset-1 form; onnx and onnxruntime start at 7",
    ("", "Reshape", 1): "shape as attribute; onnx and onnxruntime start at 5",
    ("", "Split", 1): "split as optional input and attribute; onnx and onnxruntime start at 2",
}


def _unimplemented() -> dict[tuple[str, str, int], str]:
    gaps = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain not in ("", "ai.onnx.ml") or schema.deprecated:
            continue
        key = OpKey(schema.domain, schema.name, schema.since_version)
        if kernels.lookup(key) is not None:
            continue
        reason = _loadable(key, schema.since_version)
        if reason is not None:
            gaps[(schema.domain, schema.name, schema.since_version)] = reason
    return gaps


def test_every_schema_version_has_an_implementation_but_the_listed_gaps():
    gaps = _unimplemented()
    assert set(gaps) - set(KNOWN_GAPS) == set(), {k: gaps[k] for k in set(gaps) - set(KNOWN_GAPS)}
    assert set(KNOWN_GAPS) - set(gaps) == set(), "listed gaps that now run: remove them"
