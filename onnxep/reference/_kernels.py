"""Imports every module of hand-written reference kernels so they register."""

from __future__ import annotations

from onnxep.reference import (
    control_flow,  # noqa: F401
    deprecated_ops,  # noqa: F401
)
