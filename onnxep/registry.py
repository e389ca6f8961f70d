"""Kernel registry keyed by ONNX schema version: ``OpKey("", "Softmax", 13)`` is Softmax-13.

Op and domain strings appear in ``register(...)`` calls; everything else passes an
:class:`OpKey`. A node's key is resolved through ``onnx.defs.get_schema`` so a kernel written
for Softmax-11 is never run for a Softmax-13 node (onnxruntime's exact-version rule).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import onnx

if TYPE_CHECKING:
    from onnxep.graph import NodeInfo

__all__ = [
    "Kernel",
    "KernelRegistry",
    "OpKey",
    "is_multi_output",
    "resolve_key",
    "since_versions",
]

F = TypeVar("F", bound=Callable[..., Any])
CheckFn = Callable[["NodeInfo"], "str | None"]


@dataclasses.dataclass(frozen=True)
class OpKey:
    """One ONNX schema version of one op."""

    domain: str
    op_type: str
    since_version: int

    def __str__(self) -> str:
        prefix = f"{self.domain}." if self.domain else ""
        return f"{prefix}{self.op_type}-{self.since_version}"


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel and what it needs from the plan.

    ``fn`` takes the node's inputs positionally in schema order (a missing optional input is
    ``None``) and its attributes as keyword arguments with ONNX names. It returns one array,
    or a tuple when the schema has several or variadic outputs (see :func:`is_multi_output`).

    ``factory=True`` means ``fn(info)`` is called once when the plan is built and returns the
    callable to run, for kernels that precompute from attributes or constant inputs.
    ``host_inputs`` lists input positions that stay on the host (shapes, axes, indices).

    In-place execution, for host kernels: ``fresh_output=True`` promises that every output is
    an array the kernel allocated itself (never an input, a view of one, or a constant).
    ``in_place`` is a variant of ``fn`` (same signature and binding) that may overwrite its
    first input and return it; the plan runs it when that input comes from a
    ``fresh_output`` kernel of the same provider and nothing else reads it.
    """

    key: OpKey
    fn: Callable[..., Any]
    dtypes: frozenset[str] | None = None
    check: CheckFn | None = None
    host_inputs: tuple[int, ...] = ()
    factory: bool = False
    fresh_output: bool = False
    in_place: Callable[..., Any] | None = None


class KernelRegistry:
    """The kernels of one provider."""

    def __init__(self) -> None:
        self._kernels: dict[OpKey, Kernel] = {}

    def register(
        self,
        op_type: str,
        *,
        versions: Collection[int],
        domain: str = "",
        dtypes: Collection[str] | None = None,
        check: CheckFn | None = None,
        host_inputs: Collection[int] = (),
        factory: bool = False,
        fresh_output: bool = False,
        in_place: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for each schema ``since_version`` in ``versions``."""

        def decorate(fn: F) -> F:
            for version in versions:
                self.add(
                    Kernel(
                        OpKey(domain, op_type, int(version)),
                        fn,
                        frozenset(dtypes) if dtypes is not None else None,
                        check,
                        tuple(host_inputs),
                        factory,
                        fresh_output,
                        in_place,
                    )
                )
            return fn

        return decorate

    def add(self, kernel: Kernel) -> None:
        """Add one kernel; a second kernel for the same key is an error."""
        if kernel.key in self._kernels:
            raise ValueError(f"duplicate kernel for {kernel.key}")
        self._kernels[kernel.key] = kernel

    def lookup(self, key: OpKey) -> Kernel | None:
        """The kernel for exactly this schema version, or None."""
        return self._kernels.get(key)

    def versions_of(self, domain: str, op_type: str) -> list[int]:
        """The schema versions registered for one op, for refusal messages."""
        return sorted(
            k.since_version for k in self._kernels if k.domain == domain and k.op_type == op_type
        )

    def __iter__(self) -> Iterator[Kernel]:
        return iter(self._kernels.values())

    def __len__(self) -> int:
        return len(self._kernels)


@functools.lru_cache(maxsize=4096)
def _schema(op_type: str, opset: int, domain: str) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def resolve_key(domain: str, op_type: str, opset: int) -> OpKey:
    """The key of the schema a node with this op and opset import runs under."""
    domain = "" if domain == "ai.onnx" else domain
    schema = _schema(op_type, opset, domain)
    return OpKey(domain, op_type, schema.since_version if schema else opset)


def schema_of(key: OpKey) -> onnx.defs.OpSchema | None:
    """The ONNX schema of a key, or None for ops onnx does not know."""
    return _schema(key.op_type, key.since_version, key.domain)


def is_multi_output(key: OpKey) -> bool:
    """Whether kernels for this op return a tuple: several outputs, or a variadic one."""
    schema = schema_of(key)
    if schema is None:
        return True
    outputs = schema.outputs
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    return len(outputs) != 1 or outputs[0].option == variadic


@functools.lru_cache(maxsize=1024)
def since_versions(op_type: str, domain: str = "", *, first: int = 1) -> tuple[int, ...]:
    """Every schema ``since_version`` of an op known to the installed onnx, from ``first`` on.

    For kernels whose semantics did not change across versions (only the type lists did);
    an op whose meaning changed must list its versions explicitly.
    """
    versions = sorted(
        {
            s.since_version
            for s in onnx.defs.get_all_schemas_with_history()
            if s.name == op_type and s.domain == domain
        }
    )
    return tuple(v for v in versions if v >= first)
