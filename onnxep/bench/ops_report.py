"""Markdown and plot of the per-op sweeps of :mod:`onnxep.bench.ops`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from onnxep.bench.report import fmt_ms, require_matplotlib

__all__ = ["ops_markdown", "plot_ops"]


Notes = dict[tuple[str, str, str, str], list[int]]


def _cell_text(cell: dict[str, Any] | None, notes: Notes) -> str:
    if cell is None:
        return "-"
    if cell.get("error"):
        key = (cell["op"], cell["dtype"], cell["runner"], cell["error"])
        notes.setdefault(key, []).append(cell["size"])
        for status in ("declined", "fell back"):
            if cell["error"].startswith(status):
                return status
        return "failed"
    text = fmt_ms(cell["p50_ms"])
    if "transfer_ms" in cell:
        text += f" (transfers {fmt_ms(cell['transfer_ms'])})"
    return text


def _op_table(
    op: str, cells: Sequence[dict[str, Any]], runners: list[str], notes: Notes
) -> list[str]:
    lines = [
        f"### {op} (p50 ms)",
        "",
        "| dtype | n | shape | " + " | ".join(runners) + " |",
        "|" + "---|" * (3 + len(runners)),
    ]
    keyed = {(c["dtype"], c["size"], c["runner"]): c for c in cells}
    points = sorted({(c["dtype"], c["size"]): c["shape"] for c in cells}.items())
    for (dtype, size), shape in points:
        row = [_cell_text(keyed.get((dtype, size, r)), notes) for r in runners]
        lines.append(f"| {dtype} | {size} | `{shape}` | " + " | ".join(row) + " |")
    return [*lines, ""]


def _where(size: int | None, sizes: Sequence[int]) -> str:
    if size is None:
        return "never (in the sizes tried)"
    if size == sizes[0]:
        return f"always (from the smallest, n={size})"
    return f"from n={size}"


def ops_markdown(result: Mapping[str, Any], unavailable: Mapping[str, str]) -> str:
    """Tables per op, the crossover table, and the note on device (GPU) providers."""
    cells = result["cells"]
    runners = list(dict.fromkeys(c["runner"] for c in cells))
    lines = ["## Per-op sweeps", ""]
    notes: Notes = {}
    for op in dict.fromkeys(c["op"] for c in cells):
        lines += _op_table(op, [c for c in cells if c["op"] == op], runners, notes)
    lines += [
        "### Crossovers: where a runner starts to beat the reference provider",
        "",
        "| op | dtype | runner | faster than reference | without transfers |",
        "|---|---|---|---|---|",
    ]
    for x in result["crossovers"]:
        kernel = (
            _where(x["from_size_without_transfers"], x["sizes"])
            if "from_size_without_transfers" in x
            else "-"
        )
        lines.append(
            f"| {x['op']} | {x['dtype']} | {x['runner']} | "
            f"{_where(x['from_size'], x['sizes'])} | {kernel} |"
        )
    lines.append("")
    if result["device_providers"]:
        names = ", ".join(f"{p} ({d})" for p, d in result["device_providers"].items())
        lines.append(
            f"Device providers measured: {names}; their times include the transfers, "
            "which are also timed alone (upload of inputs + download of outputs)."
        )
    else:
        why = "; ".join(f"{p}: {r}" for p, r in unavailable.items()) or "none is installed"
        lines.append(
            f"No device (GPU) provider is available here, so no transfer cost was "
            f"measured. Unavailable providers: {why}."
        )
    if notes:
        lines += ["", "Notes:", ""]
        for (op, dtype, runner, error), sizes in notes.items():
            at = ", ".join(str(n) for n in sizes)
            lines.append(f"- {op} {dtype} n={at} / {runner}: {error}")
    return "\n".join(lines)


def _plot_panel(ax: Any, op: str, cells: Sequence[dict[str, Any]], colors: dict) -> None:
    dtypes = list(dict.fromkeys(c["dtype"] for c in cells))
    for runner, color in colors.items():
        for k, dtype in enumerate(dtypes):
            pts = sorted(
                (c["size"], c["p50_ms"])
                for c in cells
                if (c["runner"], c["dtype"]) == (runner, dtype)
            )
            if pts:
                xs, ys = zip(*pts)
                style = ("-", "--", ":", "-.")[k % 4]
                ax.plot(xs, ys, marker="o", color=color, linestyle=style, label=f"{runner} {dtype}")
    ax.set(title=op, xscale="log", yscale="log", xlabel="n", ylabel="p50 ms")
    ax.legend(fontsize="x-small")


def plot_ops(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """One panel per op: p50 time against size, a colour per runner, a line style per dtype."""
    plt = require_matplotlib()
    cells = [c for c in result["cells"] if not c.get("error")]
    ops = list(dict.fromkeys(c["op"] for c in result["cells"]))
    runners = dict.fromkeys(c["runner"] for c in result["cells"])
    colors = {runner: f"C{i % 10}" for i, runner in enumerate(runners)}
    cols = min(3, max(len(ops), 1))
    rows = (len(ops) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        _plot_panel(ax, op, [c for c in cells if c["op"] == op], colors)
    for ax in list(axes.flat)[len(ops) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
