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

KNOWN_FAILURES: dict[str, str] = {}
