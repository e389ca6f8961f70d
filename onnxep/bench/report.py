"""Reporting: the machine, Markdown tables, the JSON document and speed-up plots."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
from collections.abc import Sequence
from typing import Any

__all__ = [
    "SCHEMA",
    "fmt_ms",
    "machine_info",
    "machine_markdown",
    "models_markdown",
    "plot_models",
    "require_matplotlib",
    "write_json",
]

SCHEMA = "onnxep-bench/1"
PACKAGES = ("onnxep", "numpy", "onnx", "onnxruntime", "numba", "cupy", "matplotlib")
CUPY_DISTRIBUTIONS = ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x")


def _version(package: str) -> str | None:
    names = CUPY_DISTRIBUTIONS if package == "cupy" else (package,)
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpu_name(available: Sequence[str]) -> str | None:
    if "CuPyExecutionProvider" not in available:
        return None
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # a GPU that cannot be queried still gets a line
        return f"unknown ({type(exc).__name__})"


def _source_revision() -> str | None:
    """The git commit onnxep runs from (``+dirty`` with uncommitted changes), if a checkout."""
    import subprocess

    folder = pathlib.Path(__file__).resolve().parents[2]
    if not (folder / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "-uno"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


#: Environment variables that change the numbers: thread counts and BLAS kernel choices.
TUNING_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "ONNXEP_OPENBLAS_CORETYPE",
    "ONNXEP_NUMBA_PRIVATE_BLAS",
)


def _blas() -> str | None:
    """numpy's BLAS (it runs the reference provider's MatMul/Gemm/Conv), e.g. OpenBLAS 0.3."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (TypeError, KeyError, AttributeError):  # old numpy: no mode="dicts"
        return None


def _openblas_core() -> str | None:
    """The kernel set numpy's OpenBLAS chose at run time (e.g. Haswell, SkylakeX)."""
    import ctypes

    from onnxep.blas_threads import numpy_openblas

    lib = numpy_openblas()
    if lib is None:
        return None
    for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
        if hasattr(lib, name):
            getter = getattr(lib, name)
            getter.restype = ctypes.c_char_p
            return getter().decode()
    return None


def _numba_blas(available: Sequence[str]) -> str | None:
    """Which BLAS kernels the numba provider's GEMMs run (its private OpenBLAS copy)."""
    if "NumbaExecutionProvider" not in available:
        return None
    try:
        from onnxep_numba._openblas import blas

        lib = blas()
    except Exception:  # a report line, never a failure
        return None
    if lib is None:
        return "numpy's matmul (no OpenBLAS found)"
    where = "a private single-threaded copy" if lib.private else "numpy's instance at 1 thread"
    return f"OpenBLAS {lib.core} kernels ({where})"


def machine_info(threads: int) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, threads, load, package versions."""
    from onnxep.bench.suite import unavailable_providers
    from onnxep.discovery import get_available_providers

    available = get_available_providers()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "threads": threads,
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in load] if load else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "providers_available": available,
        "providers_unavailable": unavailable_providers(),
        "gpu": _gpu_name(available),
        "onnxep_source": _source_revision(),
        "blas": _blas(),
        "blas_core": _openblas_core(),
        "numba_blas": _numba_blas(available),
        "tuning_env": {k: os.environ[k] for k in TUNING_VARIABLES if k in os.environ},
    }


def machine_markdown(info: dict[str, Any]) -> str:
    """The machine as a short Markdown list."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    missing = [k for k, v in info["versions"].items() if not v]
    lines = [
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gib']} GiB RAM; threads per runtime: {info['threads']}",
        f"- GPU: {info['gpu'] or 'none used'}",
        f"- load average at start (1/5/15 min): {info['load_average']}",
        f"- {info['platform']}, Python {info['python']}"
        + (f"; onnxep from git {info['onnxep_source']}" if info.get("onnxep_source") else ""),
        f"- numpy's BLAS: {info['blas']}"
        + (f" ({info['blas_core']} kernels)" if info.get("blas_core") else ""),
        f"- numba provider's BLAS: {info.get('numba_blas') or 'not used'}",
        f"- tuning variables: {info.get('tuning_env') or 'none set'}",
        f"- versions: {versions}" + (f" (not installed: {', '.join(missing)})" if missing else ""),
        f"- onnxep providers available: {', '.join(info['providers_available'])}",
    ]
    for name, reason in info["providers_unavailable"].items():
        lines.append(f"- not available: {name}: {reason}")
    return "\n".join(lines)


def fmt_ms(value: float | None) -> str:
    """Milliseconds with about three significant digits; ``-`` for none."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_err(value: float | None) -> str:
    if value is None:
        return "-"
    return "0" if value == 0 else f"{value:.1e}"


def _placement(row: dict[str, Any]) -> str:
    from onnxep.provider import alias_of

    placement = row.get("placement") or {}
    return ", ".join(f"{alias_of(p)} {n}" for p, n in placement.items())


MODEL_HEADER = (
    "| model | runner | create ms | first ms | p50 ms | p90 ms | p99 ms | runs "
    "| time vs ORT | speed-up vs RefEval | max abs err vs ORT | nodes placed |"
)


def models_markdown(records: Sequence[dict[str, Any]]) -> str:
    """One table of every model x runner, then per-node overhead and the notes."""
    lines = ["## Models", "", MODEL_HEADER, "|" + "---|" * 12]
    notes: list[str] = []
    for record in records:
        for row in record["results"]:
            if row["error"]:
                notes.append(f"{record['name']} / {row['runner']}: failed: {row['error']}")
                lines.append(f"| {record['name']} | {row['runner']} | failed" + " | -" * 9 + " |")
                continue
            notes += [f"{record['name']} / {row['runner']}: {n}" for n in row.get("notes", [])]
            cells = [
                record["name"],
                row["runner"],
                fmt_ms(row["create_ms"]),
                fmt_ms(row["first_ms"]),
                fmt_ms(row["p50_ms"]),
                fmt_ms(row["p90_ms"]),
                fmt_ms(row["p99_ms"]),
                str(row["repeats"]),
                _fmt_ratio(row["time_vs_ort"]),
                _fmt_ratio(row["speedup_vs_refeval"]),
                _fmt_err(row["max_abs_err_vs_ort"]),
                _placement(row),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += _summary_lines(records)
    lines += _overhead_lines(records)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _summary_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Geometric means per runner over the models it ran (overhead microbenchmarks, the models
    with a numpy baseline, excluded: they measure dispatch, not kernels)."""
    ratios: dict[str, list[float]] = {}
    speedups: dict[str, list[float]] = {}
    for record in records:
        if any(row["kind"] == "baseline" for row in record["results"]):
            continue
        for row in record["results"]:
            if row["error"] or row["kind"] not in ("onnxep", "reference_evaluator"):
                continue
            if row.get("time_vs_ort"):
                ratios.setdefault(row["runner"], []).append(row["time_vs_ort"])
            if row.get("speedup_vs_refeval") and row["kind"] == "onnxep":
                speedups.setdefault(row["runner"], []).append(row["speedup_vs_refeval"])
    if not ratios:
        return []
    lines = [
        "",
        "## Summary (geometric means over the models each runner ran; overhead chains excluded)",
        "",
        "| runner | models | time vs ORT | ORT / runner | speed-up vs RefEval |",
        "|---|---|---|---|---|",
    ]
    for runner, values in ratios.items():
        mean = _geomean(values)
        refeval = speedups.get(runner)
        lines.append(
            f"| {runner} | {len(values)} | {mean:.2f}x | {1 / mean:.2f} | "
            + (f"{_geomean(refeval):.1f}x |" if refeval else "- |")
        )
    return lines


def _overhead_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        (record["name"], row)
        for record in records
        for row in record["results"]
        if row.get("time_vs_baseline") is not None and row["kind"] != "baseline"
    ]
    if not rows:
        return []
    lines = [
        "",
        "## Per-node overhead (Add chain vs a bare Python loop of np.add)",
        "",
        "| model | runner | p50 ms | time vs numpy loop | overhead per node (us) |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['runner']} | {fmt_ms(row['p50_ms'])} | "
            f"{row['time_vs_baseline']:.2f}x | {row['overhead_us_per_node']:.2f} |"
        )
    return lines


def write_json(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write the benchmark document (``schema``, ``created``, ``machine``, ...) as JSON."""
    document = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **document,
    }
    pathlib.Path(path).write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ImportError saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install 'onnxep[bench]' "
            "(or pip install matplotlib)"
        ) from exc
    return plt


def plot_models(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Horizontal bars per model: each runner's speed-up over onnxruntime (log scale)."""
    plt = require_matplotlib()
    labels = [
        label
        for label in dict.fromkeys(r["runner"] for rec in records for r in rec["results"])
        if label != "onnxruntime"
    ]
    names = [rec["name"] for rec in records]
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.45 * len(names) * max(len(labels), 1) / 2))
    height = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        values = []
        for rec in records:
            row = next((r for r in rec["results"] if r["runner"] == label), None)
            ratio = row.get("time_vs_ort") if row else None
            values.append(1.0 / ratio if ratio else 0.0)
        ax.barh([j + i * height for j in range(len(names))], values, height, label=label)
    ax.set_yticks([j + height * (len(labels) - 1) / 2 for j in range(len(names))], names)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed-up over onnxruntime CPU (p50; >1 is faster)")
    ax.invert_yaxis()
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
