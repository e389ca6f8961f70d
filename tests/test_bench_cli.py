"""``onnxep bench``: report structure, JSON schema, op sweeps and the no-GPU path (no timings)."""

from __future__ import annotations

import argparse
import io
import json
import math
import pathlib
import sys
from collections.abc import Iterator

import numpy as np
import onnx
import pytest

import onnxep
from onnxep.bench.models import BenchModel, random_inputs, resolve_models
from onnxep.bench.ops import crossovers
from onnxep.bench.progress import Progress
from onnxep.bench.report import MODEL_HEADER
from onnxep.bench.runner import BenchConfig, Runner, max_abs_error
from onnxep.bench.suite import run_model
from onnxep.cli import bench
from onnxep.discovery import get_available_providers
from onnxep.models import build_add_chain
from onnxep.registry import since_versions

pytest.importorskip("onnxruntime", reason="onnxep bench compares against onnxruntime")

FAST = ["--repeat", "2", "--warmup", "0", "--ref-repeat", "1", "--quiet"]
ROW_KEYS = {
    "model",
    "runner",
    "kind",
    "providers",
    "error",
    "create_ms",
    "first_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "repeats",
    "warmup",
    "time_vs_ort",
    "speedup_vs_refeval",
    "max_abs_err_vs_ort",
}


def _cli(*argv: str) -> int:
    """Parse as the lead's dispatcher will: a ``bench`` subparser on a fresh parser."""
    parser = argparse.ArgumentParser(prog="onnxep")
    bench.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--settle", "0", *argv])
    assert args.func is bench.run
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("bench") / "tiny_chain.onnx"
    onnx.save(build_add_chain(length=3, size=4), str(path))
    return path


@pytest.fixture(scope="module")
def model_run(tiny_model: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of ``onnxep bench`` on a model file and a small Add chain; its JSON and text."""
    out = tmp_path_factory.mktemp("out")
    argv = [
        str(tiny_model),
        "add_chain:length=5",
        *FAST,
        "--json",
        str(out / "r.json"),
        "--markdown",
        str(out / "r.md"),
    ]
    assert _cli(*argv) == 0
    return {"json": json.loads((out / "r.json").read_text()), "md": (out / "r.md").read_text()}


def test_list_names_the_builtin_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("--list") == 0
    names = capsys.readouterr().out.split()
    assert {"bert_encoder", "add_chain"} <= set(names)


def test_markdown_has_machine_table_headers_and_overhead(model_run: dict) -> None:
    text = model_run["md"]
    assert "## Machine" in text
    assert "- CPU: " in text
    assert MODEL_HEADER in text
    assert "| tiny_chain | onnxruntime |" in text
    assert "| tiny_chain | onnxep[reference] |" in text
    assert "| tiny_chain | ReferenceEvaluator |" in text
    assert "## Per-node overhead" in text
    assert "numpy loop (5 np.add)" in text


def test_json_schema(model_run: dict) -> None:
    doc = model_run["json"]
    assert doc["schema"] == "onnxep-bench/1"
    assert {"created", "machine", "settings", "models", "skipped"} <= set(doc)
    machine = doc["machine"]
    assert {"cpu", "cores", "threads", "versions", "providers_available", "onnxep_source"} <= set(
        machine
    )
    assert {"numpy", "onnx", "onnxruntime", "numba"} <= set(machine["versions"])
    assert doc["settings"]["repeat"] == 2
    assert [m["name"] for m in doc["models"]] == ["tiny_chain", "add_chain:length=5"]
    for record in doc["models"]:
        assert {"name", "description", "nodes", "inputs", "results"} <= set(record)
        for row in record["results"]:
            assert row["error"] is None, row
            assert set(row) >= ROW_KEYS
            assert row["max_abs_err_vs_ort"] < 1e-5  # every runtime computes the same sum
    chain = doc["models"][1]["results"]
    assert {r["kind"] for r in chain} == {
        "onnxruntime",
        "onnxep",
        "reference_evaluator",
        "baseline",
    }
    ours = next(r for r in chain if r["runner"] == "onnxep[reference]")
    assert ours["placement"] == {"ReferenceExecutionProvider": 5}
    assert "overhead_us_per_node" in ours
    assert "time_vs_baseline" in ours


def test_without_reference_evaluator(tiny_model: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r.json"
    assert _cli(str(tiny_model), "--no-reference-evaluator", *FAST, "--json", str(out)) == 0
    rows = json.loads(out.read_text())["models"][0]["results"]
    assert "ReferenceEvaluator" not in {r["runner"] for r in rows}
    assert all(r["speedup_vs_refeval"] is None for r in rows)


def test_ops_sweep_on_tiny_sizes_and_the_no_gpu_path(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ops.json"
    argv = [
        "--ops",
        "--op",
        "Relu",
        "--op",
        "MatMul",
        "--op",
        "Conv",
        "--sizes",
        "4,8",
        "--dtypes",
        "float32",
        "--providers",
        "reference",
        *FAST,
        "--json",
        str(out),
    ]
    assert _cli(*argv) == 0
    text = capsys.readouterr().out
    assert "## Models" not in text  # --ops alone sweeps ops only
    for heading in (
        "### Relu (p50 ms)",
        "### MatMul (p50 ms)",
        "### Conv (p50 ms)",
        "### Crossovers",
    ):
        assert heading in text
    ops = json.loads(out.read_text())["ops"]
    assert {"cells", "crossovers", "device_providers"} <= set(ops)
    assert len(ops["cells"]) == 3 * 2 * 2  # ops x sizes x (reference, onnxruntime)
    assert {c["size"] for c in ops["cells"]} == {4, 8}
    assert all(c["error"] is None and c["p50_ms"] > 0 for c in ops["cells"])
    assert {x["runner"] for x in ops["crossovers"]} == {"onnxruntime"}
    assert ops["device_providers"] == {}
    assert "No device (GPU) provider is available here" in text


def test_unavailable_gpu_provider_is_skipped_with_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "CuPyExecutionProvider" in get_available_providers():
        pytest.skip("a GPU provider is available here; this checks the no-GPU path")
    argv = [
        "--ops",
        "--op",
        "Relu",
        "--sizes",
        "4",
        "--dtypes",
        "float32",
        "--providers",
        "cupy,reference",
        *FAST,
    ]
    assert _cli(*argv) == 0
    assert "Skipped providers: CuPyExecutionProvider:" in capsys.readouterr().out
    assert _cli("--ops", "--providers", "cupy", *FAST) == 2
    assert "none of the requested providers is available" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_such_model"], "unknown model 'no_such_model'"),
        (["encoder:depth=2"], "unknown parameter 'depth'"),
        (["--providers", "nosuch"], "unknown provider 'nosuch'"),
        (["--ops", "--op", "Gemm", "--sizes", "4"], "unknown op(s) ['Gemm']"),
        (["--repeat", "0"], "must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(*argv, "--quiet") == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _cli("add_chain:length=2", "--plot", str(tmp_path / "p.png"), *FAST) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_plot_writes_pngs(tiny_model: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    argv = [
        str(tiny_model),
        "--ops",
        "--op",
        "Relu",
        "--sizes",
        "4",
        "--dtypes",
        "float32",
        "--no-reference-evaluator",
        *FAST,
        "--plot",
        str(tmp_path / "p.png"),
    ]
    assert _cli(*argv) == 0
    for name in ("p.png", "p_ops.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_runner_becomes_an_error_row() -> None:
    def broken(_model: bytes) -> None:
        raise RuntimeError("no such device")

    model = BenchModel(
        "chain",
        "3 Adds",
        lambda: build_add_chain(3).SerializeToString(),
        random_inputs,
        baseline=lambda: Runner("broken", "baseline", broken),
    )
    config = BenchConfig(repeat=1, warmup=0, reference_evaluator=False, settle_s=0)
    record = run_model(model, [("ReferenceExecutionProvider",)], config, Progress(3, quiet=True))
    rows = {r["runner"]: r for r in record["results"]}
    assert rows["broken"]["error"].startswith("RuntimeError: no such device")
    assert rows["onnxep[reference]"]["error"] is None
    assert rows["onnxep[reference]"]["max_abs_err_vs_ort"] == 0


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    plain, tty = io.StringIO(), io.StringIO()
    for stream, is_tty in ((plain, False), (tty, True)):
        progress = Progress(2, stream=stream, tty=is_tty)
        progress.start("model / runner")
        progress.finish("p50 1 ms")
    assert plain.getvalue() == "[1/2] model / runner ...\n    p50 1 ms\n"
    assert tty.getvalue().startswith("\r[") and "\n" not in tty.getvalue()


def test_max_abs_error_flags_shape_and_nan_mismatches() -> None:
    a = np.array([1.0, 2.0], np.float32)
    assert max_abs_error([a], [a + 0.5]) == pytest.approx(0.5)
    assert math.isinf(max_abs_error([a], [a[:1]]))
    assert math.isinf(max_abs_error([np.array([np.nan, 1.0])], [a]))
    assert max_abs_error([np.array(["x"])], [np.array(["x"])]) == 0


def test_crossover_is_the_size_from_which_every_larger_size_wins() -> None:
    ref = "ReferenceExecutionProvider"
    times = {ref: [1.0, 2.0, 4.0, 8.0], "fast": [2.0, 1.0, 5.0, 1.0], "slow": [9.0] * 4}
    cells = [
        {
            "op": "Relu",
            "dtype": "float32",
            "size": n,
            "runner": name,
            "providers": [name],
            "p50_ms": t,
        }
        for name, series in times.items()
        for n, t in zip((1, 2, 4, 8), series)
    ]
    found = {x["runner"]: x["from_size"] for x in crossovers(cells)}
    assert found == {"fast": 8, "slow": None}


def test_model_specs_resolve() -> None:
    (encoder,) = resolve_models(["encoder:layers=1,hidden=16,heads=2,ffn=32,seq=3"])
    feeds = encoder.feeds(encoder.load())
    assert feeds["hidden_states"].shape == (1, 3, 16)
    (chain,) = resolve_models(["add_chain:length=7"])
    assert chain.nodes_per_baseline == 7


class _FailingAdd(onnxep.Provider):
    """Claims Add, then fails at run time: the bench must not time the fallback as its own."""

    name = "FailingAddExecutionProvider"
    kernels = onnxep.KernelRegistry()


@_FailingAdd.kernels.register("Add", versions=since_versions("Add"))
def _failing_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    raise RuntimeError("device lost")


@pytest.fixture
def failing_provider() -> Iterator[str]:
    onnxep.register_provider(_FailingAdd)
    yield "failingadd"
    onnxep.unregister_provider(_FailingAdd.name)


def test_run_time_fallback_is_reported_not_credited(
    failing_provider: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "r.json"
    argv = [
        "add_chain:length=3",
        "--ops",
        "--op",
        "Add",
        "--sizes",
        "4",
        "--dtypes",
        "float32",
        "--providers",
        failing_provider,
        "--no-reference-evaluator",
        *FAST,
        "--json",
        str(out),
    ]
    assert _cli(*argv) == 0
    doc = json.loads(out.read_text())
    row = next(r for r in doc["models"][0]["results"] if r["runner"] == "onnxep[failingadd]")
    assert row["placement"] == {"ReferenceExecutionProvider": 3}
    assert any("failed while running" in note for note in row["notes"])
    cell = next(c for c in doc["ops"]["cells"] if c["runner"] == "onnxep[failingadd]")
    assert cell["error"].startswith("fell back at run time")
    assert "p50_ms" not in cell


def test_summary_takes_geometric_means_over_kernel_models_only(model_run: dict) -> None:
    """tiny_chain counts; add_chain (a per-node overhead chain with a numpy baseline) does not."""
    text = model_run["md"]
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip(): line
        for line in summary.splitlines()
        if line.startswith("| onnxep[") or line.startswith("| ReferenceEvaluator")
    }
    assert "onnxep[reference]" in rows and "ReferenceEvaluator" in rows
    record = next(m for m in model_run["json"]["models"] if m["name"] == "tiny_chain")
    row = next(r for r in record["results"] if r["runner"] == "onnxep[reference]")
    cells = [c.strip() for c in rows["onnxep[reference]"].split("|")[1:-1]]
    assert cells[1] == "1"  # one model: tiny_chain
    assert cells[2] == f"{row['time_vs_ort']:.2f}x"


def test_machine_names_the_blas_kernels_and_tuning_variables(model_run: dict) -> None:
    machine = model_run["md"].split("## Machine", 1)[1].split("\n## ", 1)[0]
    assert "- numpy's BLAS: " in machine and "- tuning variables: " in machine
    assert "tuning_env" in model_run["json"]["machine"]
