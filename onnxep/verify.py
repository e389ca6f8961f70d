"""``onnxep verify``: the ONNX node conformance cases for the ops one provider claims.

For each case with a node the provider claims, the model runs with that provider first;
the report says per op how many cases passed, which failed (with the max error) and which
nodes the provider declined (with its reason). A claimed node that ends up elsewhere is a
failure: a provider must really run what its ``supports`` accepts.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from onnxep.discovery import canonical_names, entries
from onnxep.errors import InvalidArgument
from onnxep.testing import kernel_test_options, node_decisions

__all__ = ["OpResult", "compare_outputs", "node_cases", "verify_provider"]


@dataclasses.dataclass
class OpResult:
    """What happened to one op's cases."""

    passed: list[str] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (case, why)
    declined: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (case, reason)


def node_cases() -> list[Any]:
    """The ONNX node test cases of the installed onnx package (generated in memory)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases(None) if c.kind == "node"]


def compare_outputs(got: Any, want: Any, rtol: float, atol: float) -> str | None:
    """None when equal within tolerance, else a short description of the difference."""
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return f"expected a sequence of {len(want)}, got {type(got).__name__}"
        for g, w in zip(got, want, strict=True):
            problem = compare_outputs(g, w, rtol, atol)
            if problem:
                return problem
        return None
    if isinstance(want, dict):
        return None if got == want else "maps differ"
    if want is None:
        return None if got is None else f"expected None, got {type(got).__name__}"
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if want.dtype.kind in "fc" and got.dtype.kind in "fc":
        g, w = got.astype(np.float64), want.astype(np.float64)
        close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            diff = np.abs(g - w)[~close]
            return f"max abs error {np.nanmax(diff):.3g} (rtol {rtol}, atol {atol})"
        return None
    if want.dtype == object or got.dtype == object:
        return None if np.array_equal(got.astype(str), want.astype(str)) else "strings differ"
    return None if np.array_equal(got, want) else "values differ"


def verify_provider(name: str, cases: Iterable[Any] | None = None) -> dict[str, OpResult]:
    """Run the node cases for the ops provider ``name`` claims; results per op type."""
    from onnxep.session import InferenceSession

    (full_name,) = canonical_names(name)[:1] or (name,)
    entry = entries().get(full_name)
    if entry is None:
        raise InvalidArgument(f"no provider named {name!r} is installed")
    status = entry.availability()
    if not status:
        raise InvalidArgument(f"{full_name} is not available: {status.reason}")
    cls = entry.load()
    assert cls is not None
    provider = cls()
    results: dict[str, OpResult] = {}
    for case in cases if cases is not None else node_cases():
        claimed = _claims(provider, case.model, results, case.name)
        if not claimed:
            continue
        try:
            session = InferenceSession(
                case.model.SerializeToString(), kernel_test_options(), providers=[full_name]
            )
        except Exception as exc:
            for op in claimed:
                results[op].failed.append((case.name, f"session: {type(exc).__name__}: {exc}"))
            continue
        problem = _placement_problem(session, full_name, claimed)
        problem = problem or _run_case(session, case, [i.name for i in case.model.graph.input])
        for op in set(claimed.values()):
            target = results.setdefault(op, OpResult())
            if problem:
                target.failed.append((case.name, problem))
            else:
                target.passed.append(case.name)
    return results


def _claims(provider: Any, model: Any, results: dict[str, OpResult], case: str) -> dict[str, str]:
    """Node label -> op type of the nodes the provider accepts; declines are recorded."""
    claimed = {}
    for node, support in node_decisions(provider, model):
        if support:
            claimed[node.label] = node.op_type
        elif provider.kernels.versions_of(node.key.domain, node.op_type):
            results.setdefault(node.op_type, OpResult()).declined.append((case, support.reason))
    return claimed


def _placement_problem(session: Any, name: str, claimed: dict[str, str]) -> str | None:
    report = session.explain()
    for label in claimed:
        where = report.provider_of(label)
        if where != name:
            return f"node {label} was claimed but ran on {where}"
    return None


def _run_case(session: Any, case: Any, names: list[str]) -> str | None:
    for inputs, expected in case.data_sets:
        feeds = dict(zip(names, inputs, strict=False))
        try:
            outputs = session.run(None, feeds)
        except Exception as exc:
            return f"run: {type(exc).__name__}: {exc}"
        for got, want in zip(outputs, expected, strict=False):
            problem = compare_outputs(got, want, case.rtol, case.atol)
            if problem:
                return problem
    return None
