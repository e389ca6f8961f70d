"""ONNX node cases onnxep is known to fail: case name -> reason.

A plain case name is a failure of the default providers (``test_node_case``); a name with
the ``reference/`` prefix is a failure of the reference provider alone
(``test_node_case_reference_only``). Each entry becomes ``pytest.mark.xfail(strict=True)``:
when a fix makes the case pass, the suite fails until the entry is removed here.
Reasons start with who owns the fix, e.g. ``"hand-written kernel bug: ..."``.
"""

from __future__ import annotations

__all__ = ["KNOWN_FAILURES", "REFERENCE_PREFIX"]

REFERENCE_PREFIX = "reference/"

_MAXUNPOOL_ORT = (
    "onnx test data (onnx/onnx#2398): with output_shape the hand-written MaxUnpool counts "
    "indices in output_shape, as onnxruntime and MaxPool do; onnx's data counts them in the "
    "inferred shape (onnxruntime excludes this case as invalid). tests/reference/"
    "test_conformance.py compares it with onnxruntime instead"
)

KNOWN_FAILURES: dict[str, str] = {
    "test_maxunpool_export_with_output_shape": _MAXUNPOOL_ORT,
    "reference/test_maxunpool_export_with_output_shape": _MAXUNPOOL_ORT,
}
