"""If, Loop and Scan, running their bodies as compiled onnxep plans.

The plan hands each body in as a :class:`~onnxep.plan.SubgraphFunction` called with the
body's formal inputs followed by the outer-scope values it reads; those outer values arrive
here after the node's own inputs (``*rest``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxep.reference._registry import kernels
from onnxep.registry import since_versions

__all__: list[str] = []


@kernels.register("If", versions=since_versions("If"))
def if_(cond: Any, *outer: Any, then_branch: Any, else_branch: Any) -> tuple[Any, ...]:
    """Run one branch; outputs are the branch's outputs."""
    branch = then_branch if bool(np.asarray(cond).reshape(-1)[0]) else else_branch
    return branch(*outer)
