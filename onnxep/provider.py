"""The provider API: what a hardware vendor implements, usually in one file.

A provider names itself and its device, says whether it can run here (and why not),
declares its kernels in a :class:`~onnxep.registry.KernelRegistry`, and moves arrays to and
from its device. Optionally it compiles a whole subgraph (``compile``), to fuse or capture.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from onnxep.graph import Graph, Node, NodeInfo
from onnxep.registry import Kernel, KernelRegistry

__all__ = ["Provider", "Segment", "Support", "bind_kernel"]


@dataclasses.dataclass(frozen=True)
class Support:
    """A yes, or a no with its reason. Truthy when ``ok``."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def yes(cls) -> Support:
        """Supported."""
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Support:
        """Not supported, and why."""
        return cls(False, reason)


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
    """A run of nodes given to one provider: what ``Provider.compile`` receives.

    ``inputs`` are the values the segment reads from outside (graph inputs, initializers,
    other segments' outputs, outer-scope values); ``outputs`` those read after it.
    A compiled segment is called with ``inputs`` in order and returns ``outputs`` as a tuple.
    """

    index: int
    provider: Provider
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    graph: Graph

    def info(self, node: Node) -> NodeInfo:
        """The :class:`NodeInfo` of one of the segment's nodes."""
        return NodeInfo(node, self.graph)


class Provider:
    """Base class of every execution provider.

    Subclasses set ``name`` (onnxruntime style, ``AcmeExecutionProvider``), ``device`` and
    ``kernels``, and override ``is_available`` and, for a non-host device, ``to_device`` /
    ``to_host``. The short alias (``acme``) is derived from the name.
    """

    name: ClassVar[str] = "Provider"
    device: ClassVar[str] = "cpu"
    kernels: ClassVar[KernelRegistry] = KernelRegistry()
    version: ClassVar[str] = "0"
    #: Segments with fewer nodes are declined (not worth a device round trip).
    min_segment_nodes: ClassVar[int] = 1

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.threads: int | None = None

    # --- availability -----------------------------------------------------------------
    @classmethod
    def is_available(cls) -> Support:
        """Whether the provider can run on this machine; when not, the reason."""
        return Support.yes()

    @classmethod
    def alias(cls) -> str:
        """The short case-insensitive name: ``NumbaExecutionProvider`` -> ``numba``."""
        return alias_of(cls.name)

    def configure(self, *, threads: int | None = None) -> None:
        """Session settings that concern the provider (thread count, 0/None = default)."""
        self.threads = threads or None

    # --- placement --------------------------------------------------------------------
    def kernel_for(self, info: NodeInfo) -> Kernel | None:
        """The kernel that would run this node, ignoring dtype and attribute checks."""
        return self.kernels.lookup(info.node.key)

    def supports(self, info: NodeInfo) -> Support:
        """Whether this provider runs the node: op and schema version, dtypes, check."""
        kernel = self.kernel_for(info)
        if kernel is None:
            return Support.no(self._missing_kernel_reason(info))
        if kernel.dtypes is not None:
            for i in range(info.n_inputs):
                if not info.node.inputs[i] or i in kernel.host_inputs:
                    continue
                dtype = info.input_type(i).dtype
                if dtype is None:
                    return Support.no(f"input {i} has an unknown dtype")
                if dtype.name not in kernel.dtypes:
                    takes = ", ".join(sorted(kernel.dtypes))
                    return Support.no(f"input {i} is {dtype.name}; kernel takes {takes}")
        if kernel.check is not None:
            reason = kernel.check(info)
            if reason:
                return Support.no(reason)
        return Support.yes()

    def _missing_kernel_reason(self, info: NodeInfo) -> str:
        key = info.node.key
        versions = self.kernels.versions_of(key.domain, key.op_type)
        if versions:
            have = ", ".join(str(v) for v in versions)
            return f"no kernel for {key} (has versions {have})"
        return f"no kernel for {key.op_type}"

    # --- execution --------------------------------------------------------------------
    def bind(self, info: NodeInfo) -> Callable[..., Any]:
        """The callable that runs one node: its kernel with the attributes bound."""
        kernel = self.kernel_for(info)
        if kernel is None:
            raise LookupError(self._missing_kernel_reason(info))
        return bind_kernel(kernel, info)

    def compile(self, segment: Segment) -> Callable[..., tuple[Any, ...]] | None:
        """Compile a whole segment into one callable, or return None to run node by node."""
        return None

    def to_device(self, array: Any) -> Any:
        """Move a host value (numpy array) to this provider's device."""
        return array

    def to_host(self, array: Any) -> Any:
        """Move a value of this provider's device to the host (numpy)."""
        return array

    def __repr__(self) -> str:
        return f"<{self.name} device={self.device}>"


def alias_of(name: str) -> str:
    """``NumbaExecutionProvider`` -> ``numba``."""
    return name.removesuffix("ExecutionProvider").lower()


def bind_kernel(kernel: Kernel, info: NodeInfo) -> Callable[..., Any]:
    """Bind a kernel's attributes once, at plan time."""
    if kernel.factory:
        return kernel.fn(info)
    attrs = info.attrs
    if not attrs:
        return kernel.fn
    return functools.partial(kernel.fn, **attrs)


def host_array(value: Any) -> np.ndarray:
    """A numpy view of anything array-like on the host (for CPU providers)."""
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def node_infos(nodes: Sequence[Node], graph: Graph) -> list[NodeInfo]:
    """NodeInfo for each node."""
    return [NodeInfo(n, graph) for n in nodes]
