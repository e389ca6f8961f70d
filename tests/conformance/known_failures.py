"""ONNX node cases onnxep is known to fail with its default providers: case name -> reason.

Each entry becomes ``pytest.mark.xfail(strict=True)``: when a fix makes a case pass, the
suite fails until the entry is removed here.
"""

from __future__ import annotations

__all__ = ["KNOWN_FAILURES"]

KNOWN_FAILURES: dict[str, str] = {}
