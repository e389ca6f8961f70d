"""Sliding windows shared by Conv and the pools: padding arithmetic and strided views."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["Geometry", "geometry", "pad_spatial", "windows"]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Per spatial axis: kernel, stride, dilation, pads, output size, and the ceil-mode tail."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]
    out: tuple[int, ...]
    tail: tuple[int, ...]

    @property
    def padded(self) -> bool:
        """Whether any padding (explicit or ceil-mode tail) is needed."""
        return any(self.begin) or any(self.end) or any(self.tail)


def geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    *,
    strides: Sequence[int] | None,
    dilations: Sequence[int] | None,
    pads: Sequence[int] | None,
    auto_pad: str,
    ceil_mode: int = 0,
) -> Geometry:
    """ONNX's output-size and padding rules for Conv, MaxPool and AveragePool."""
    nd = len(kernel)
    s = tuple(strides or (1,) * nd)
    d = tuple(dilations or (1,) * nd)
    span = [(k - 1) * di + 1 for k, di in zip(kernel, d)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [math.ceil(i / si) for i, si in zip(spatial, s)]
        total = [max(0, (o - 1) * si + sp - i) for o, si, sp, i in zip(out, s, span, spatial)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        begin, end = [0] * nd, [0] * nd
    else:
        p = list(pads or (0,) * (2 * nd))
        begin, end = p[:nd], p[nd:]
    rounding = math.ceil if ceil_mode else math.floor
    out, tail = [], []
    for i in range(nd):
        full = spatial[i] + begin[i] + end[i]
        o = int(rounding((full - span[i]) / s[i])) + 1
        if ceil_mode and (o - 1) * s[i] >= spatial[i] + begin[i]:
            o -= 1  # the last window must start inside the input or its left padding
        out.append(max(o, 0))
        tail.append(max(0, (o - 1) * s[i] + span[i] - full))
    return Geometry(tuple(kernel), s, d, tuple(begin), tuple(end), tuple(out), tuple(tail))


def windows(x: Any, g: Geometry, xp: Any) -> Any:
    """A strided view ``(N, C, *out, *kernel)`` of an already padded ``x``."""
    nd = len(g.kernel)
    st = x.strides
    shape = (*x.shape[:2], *g.out, *g.kernel)
    strides = (
        st[0],
        st[1],
        *(st[2 + i] * g.strides[i] for i in range(nd)),
        *(st[2 + i] * g.dilations[i] for i in range(nd)),
    )
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def pad_spatial(x: Any, g: Geometry, value: float, xp: Any) -> Any:
    """``x`` padded by the geometry's pads and ceil-mode tail with ``value``."""
    if not g.padded:
        return x
    widths = [(0, 0), (0, 0)] + [(b, e + t) for b, e, t in zip(g.begin, g.end, g.tail)]
    return xp.pad(x, widths, mode="constant", constant_values=value)
