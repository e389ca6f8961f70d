"""Finding providers: entry points in the group ``onnxep.providers``, plus ``register_provider``.

Entry-point names are the providers' full names (``NumbaExecutionProvider``), so listing
providers and resolving aliases imports none of them. A provider that fails to import or to
probe is reported unavailable with its reason, and breaks nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from onnxep.errors import InvalidArgument
from onnxep.provider import Provider, Support, alias_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderEntry",
    "entries",
    "get_all_providers",
    "get_available_providers",
    "refresh",
    "register_provider",
    "resolve_providers",
]

ENTRY_POINT_GROUP = "onnxep.providers"
REFERENCE = "ReferenceExecutionProvider"
#: Default priority when a session names no providers: fastest first, reference last.
DEFAULT_PRIORITY = (
    "CuPyExecutionProvider",
    "CppExecutionProvider",
    "NumbaExecutionProvider",
    REFERENCE,
)
#: The CPU accelerators in order of measured speed. A default chain takes only the first
#: available one: two CPU providers in one chain run two thread pools on the same cores,
#: which contend (ResNet-50 on 2 cores: 64 ms for cpp+numba, 36 ms for cpp alone).
CPU_ACCELERATORS = ("CppExecutionProvider", "NumbaExecutionProvider")
#: onnxruntime's names mapped onto ours; a tuple expands to a chain.
ORT_NAMES: dict[str, tuple[str, ...]] = {
    "cudaexecutionprovider": ("CuPyExecutionProvider",),
}
CPU_ALIAS = "cpuexecutionprovider"  # the first available CPU accelerator, then reference
#: onnxruntime providers onnxep has no counterpart for: warned about and skipped, as
#: onnxruntime does for a provider its build lacks.
ORT_ONLY = frozenset(
    n.lower()
    for n in (
        "TensorrtExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "OpenVINOExecutionProvider",
        "DnnlExecutionProvider",
        "DmlExecutionProvider",
        "CoreMLExecutionProvider",
        "NnapiExecutionProvider",
        "QNNExecutionProvider",
        "XnnpackExecutionProvider",
        "AzureExecutionProvider",
        "WebGpuExecutionProvider",
        "VitisAIExecutionProvider",
        "ACLExecutionProvider",
        "ArmNNExecutionProvider",
        "CANNExecutionProvider",
        "JsExecutionProvider",
        "SNPEExecutionProvider",
    )
)

_registered: dict[str, type[Provider]] = {}


@dataclasses.dataclass
class ProviderEntry:
    """One installed provider, loaded on first use."""

    name: str
    target: str  # "module:Class", or "registered"
    distribution: str
    _cls: type[Provider] | None = None
    _error: str | None = None

    @property
    def alias(self) -> str:
        """The short name."""
        return alias_of(self.name)

    def load(self) -> type[Provider] | None:
        """Import the provider class; None (and ``error``) when that fails."""
        if self._cls is None and self._error is None:
            try:
                module, _, attr = self.target.partition(":")
                obj: Any = importlib.import_module(module)
                for part in attr.split("."):
                    obj = getattr(obj, part)
                self._cls = obj
            except Exception as exc:  # a broken plugin must not break the others
                self._error = f"failed to import {self.target}: {type(exc).__name__}: {exc}"
        return self._cls

    @property
    def error(self) -> str | None:
        """Why loading failed, if it did."""
        return self._error

    def availability(self) -> Support:
        """Import and probe the provider; never raises."""
        cls = self.load()
        if cls is None:
            return Support.no(self._error or "failed to import")
        try:
            result = cls.is_available()
        except Exception as exc:
            return Support.no(f"is_available() raised {type(exc).__name__}: {exc}")
        if isinstance(result, Support):
            return result
        return Support.yes() if result else Support.no("is_available() returned False")


_entries_cache: dict[str, ProviderEntry] | None = None


def entries() -> dict[str, ProviderEntry]:
    """Every installed provider by full name, entry points and registered classes alike."""
    global _entries_cache
    if _entries_cache is None:
        found: dict[str, ProviderEntry] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            found.setdefault(ep.name, ProviderEntry(ep.name, ep.value, dist))
        if REFERENCE not in found:  # running from a source tree without an install
            target = "onnxep.reference:ReferenceProvider"
            found[REFERENCE] = ProviderEntry(REFERENCE, target, "onnxep")
        _entries_cache = found
    result = dict(_entries_cache)
    for name, cls in _registered.items():
        result[name] = ProviderEntry(name, "registered", "(register_provider)", cls)
    return result


def refresh() -> None:
    """Forget the entry points read so far (after installing a provider package)."""
    global _entries_cache
    _entries_cache = None


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Make a provider class usable by name without an entry point (notebooks, tests)."""
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"register_provider expects a Provider subclass, got {cls!r}")
    _registered[cls.name] = cls
    return cls


def unregister_provider(name: str) -> None:
    """Forget a provider added with :func:`register_provider`."""
    _registered.pop(name, None)


def _by_lower_name() -> dict[str, ProviderEntry]:
    table: dict[str, ProviderEntry] = {}
    for entry in entries().values():
        table[entry.name.lower()] = entry
        table.setdefault(entry.alias, entry)
    return table


def canonical_names(name: str) -> tuple[str, ...]:
    """The provider names one user-given name stands for (aliases, onnxruntime names)."""
    key = name.lower()
    table = _by_lower_name()
    if key in table:
        return (table[key].name,)
    if key in ORT_NAMES:
        return ORT_NAMES[key]
    if key == CPU_ALIAS:
        return (*_first_available(CPU_ACCELERATORS), REFERENCE)
    if key in ORT_ONLY:
        return ()
    known = sorted({e.name for e in table.values()} | {e.alias for e in table.values()})
    raise InvalidArgument(f"unknown provider {name!r}; installed: {', '.join(known)}")


def get_all_providers() -> list[str]:
    """Every installed provider's name, available or not."""
    return sorted(entries())


def get_available_providers() -> list[str]:
    """The installed providers that can run here, in default priority order."""
    all_entries = entries()
    order = [n for n in DEFAULT_PRIORITY if n in all_entries]
    order[-1:-1] = sorted(n for n in all_entries if n not in DEFAULT_PRIORITY)
    return [n for n in order if all_entries[n].availability()]


def _first_available(names: Sequence[str]) -> tuple[str, ...]:
    table = entries()
    for name in names:
        if name in table and table[name].availability():
            return (name,)
    return ()


def default_chain() -> list[str]:
    """The providers a session uses when it names none: GPU and vendor providers that are
    available, then the first available CPU accelerator, then the reference path."""
    available = get_available_providers()
    others = [n for n in available if n not in CPU_ACCELERATORS and n != REFERENCE]
    return [*others, *_first_available(CPU_ACCELERATORS), REFERENCE]


ProviderSpec = str | tuple[str, Mapping[str, Any]] | type[Provider] | Provider


def resolve_providers(
    specs: Sequence[ProviderSpec] | None,
    options: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[Provider], list[str]]:
    """Instantiate the requested providers in priority order, reference always last.

    Returns the providers and the warnings about those requested but unavailable.
    """
    if specs is None:
        specs = default_chain()
    if options is not None and len(options) != len(specs):
        raise InvalidArgument(
            f"provider_options has {len(options)} entries but providers has {len(specs)}"
        )
    chosen: list[Provider] = []
    notes: list[str] = []
    for i, spec in enumerate(specs):
        opts = dict(options[i]) if options is not None else {}
        for provider in _instantiate(spec, opts, notes, explicit=True):
            if provider.name not in {p.name for p in chosen}:
                chosen.append(provider)
    requested = [p for p in chosen if p.name == REFERENCE]  # keeps its options
    chosen = [p for p in chosen if p.name != REFERENCE]
    reference_cls = entries()[REFERENCE].load()
    assert reference_cls is not None, "the reference provider always imports"
    chosen.append(requested[0] if requested else reference_cls())
    return chosen, notes


def _instantiate(
    spec: ProviderSpec, opts: dict[str, Any], notes: list[str], *, explicit: bool
) -> Iterable[Provider]:
    if isinstance(spec, Provider):
        yield spec
        return
    if isinstance(spec, type) and issubclass(spec, Provider):
        register_provider(spec)
        spec = spec.name
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[0], str):
            raise InvalidArgument(f"a provider tuple must be (name, options), got {spec!r}")
        spec, extra = spec
        opts = {**opts, **dict(extra)}
    if not isinstance(spec, str):
        raise InvalidArgument(f"a provider must be a name or (name, options), got {spec!r}")
    names = canonical_names(spec)
    if not names:
        notes.append(f"{spec} is an onnxruntime provider onnxep does not have; skipped")
    table = entries()
    for name in names:
        entry = table.get(name)
        if entry is None:
            continue  # a chain member that is not installed
        status = entry.availability()
        if not status:
            if len(names) == 1:
                notes.append(f"{name} is not available: {status.reason}")
            continue
        cls = entry.load()
        assert cls is not None
        yield cls(opts)
