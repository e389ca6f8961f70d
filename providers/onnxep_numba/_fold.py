"""Graph rewrites before fusion (filled in with the Conv work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["rewrite"]


def rewrite(
    ops: list[Any], consts: dict[str, Any], outputs: set[str], fresh: Callable[[str], str]
) -> list[Any]:
    """No rewrites yet."""
    return ops
