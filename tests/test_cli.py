"""The command line: demo, run, partition, providers, verify (output, not timings)."""

from __future__ import annotations

import json
import re

import onnx
import pytest
from fake_device import FakeDeviceProvider
from graphs import model, node
from onnx import helper

import onnxep
from onnxep.cli.main import main


@pytest.fixture
def fake():
    onnxep.register_provider(FakeDeviceProvider)
    yield FakeDeviceProvider.name
    onnxep.unregister_provider(FakeDeviceProvider.name)


@pytest.fixture
def small_model(tmp_path):
    path = tmp_path / "small.onnx"
    m = model(
        [node("Add", ["x", "x"], ["a"]), node("Sigmoid", ["a"], ["s"]), node("Relu", ["s"], ["y"])],
        {"x": ["batch", 3]},
        ["y"],
    )
    onnx.save(m, path)
    return str(path)


def test_demo_runs_and_agrees(capsys):
    assert main(["demo", "--repeat", "1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "ReferenceExecutionProvider" in out
    assert "| providers | session (ms) |" in out
    assert "all providers agree with the reference path" in out


def test_run_with_dims_and_compare(small_model, capsys):
    code = main(["run", small_model, "--dim", "batch=4", "--compare", "reference"])
    out = capsys.readouterr().out
    assert code == 0
    assert "output y: float32[4, 3]" in out
    # other providers' Sigmoid may differ from numpy's in the last bit (C++: ~6e-8)
    err = re.search(r"max abs err (\S+), max rel err (\S+) vs reference", out)
    assert err is not None and float(err[1]) < 1e-6 and float(err[2].rstrip(",")) < 1e-6, out


def test_run_rejects_bad_dim(small_model, capsys):
    assert main(["run", small_model, "--dim", "batch"]) == 2
    assert "--dim expects name=value" in capsys.readouterr().err


def test_partition_text_json_and_annotated(fake, small_model, tmp_path, capsys):
    out_path = tmp_path / "annotated.onnx"
    assert (
        main(
            [
                "partition",
                small_model,
                "--providers",
                "fakedevice,reference",
                "--save-annotated",
                str(out_path),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "fell back to the reference path:" in text
    assert "FakeDeviceExecutionProvider: no kernel for Sigmoid" in text
    annotated = onnx.load(out_path)
    assert [
        p.value
        for n in annotated.graph.node
        for p in n.metadata_props
        if p.key == "onnxep.provider"
    ] == [fake, "ReferenceExecutionProvider", fake]
    assert main(["partition", small_model, "--providers", "fakedevice", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes_per_provider"] == {fake: 2, "ReferenceExecutionProvider": 1}
    assert data["transfers"]["per_run"] == 4


def test_partition_reports_a_model_no_provider_can_run(fake, tmp_path, capsys):
    """A custom-domain op nothing implements: the report still places every other node,
    names the unrunnable one with each provider's reason, and the command exits 1."""
    custom = helper.make_node("Frobnicate", ["a"], ["b"], name="frob", domain="com.acme")
    m = model(
        [node("Add", ["x", "x"], ["a"]), custom, node("Relu", ["b"], ["y"])], {"x": [2]}, ["y"]
    )
    m.opset_import.append(helper.make_opsetid("com.acme", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(m, path)
    assert main(["partition", str(path), "--providers", "fakedevice,reference"]) == 1
    captured = capsys.readouterr()
    assert "cannot run node 'frob'" in captured.err
    report = captured.out.split("no provider can run")[1]
    assert "frob (com.acme.Frobnicate-1)" in report
    assert "ReferenceExecutionProvider: no implementation of Frobnicate" in report
    assert "not compiled" in captured.out
    assert main(["partition", str(path), "--providers", "fakedevice", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [d["node"] for d in data["unrunnable"]] == ["frob"]
    assert data["nodes_per_provider"][fake] == 1  # the Add
    assert data["compiled"] is False and data["transfers"] is None


def test_providers_lists_availability(fake, capsys):
    assert main(["providers", "--ops"]) == 0
    out = capsys.readouterr().out
    assert "ReferenceExecutionProvider (alias reference" in out
    assert "FakeDeviceExecutionProvider (alias fakedevice" in out
    assert "MatMul" in out


def test_missing_model_is_a_clean_error(capsys):
    assert main(["run", "/nonexistent/model.onnx"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_verify_fake_provider(fake, capsys):
    assert main(["verify", "fakedevice", "--op", "Relu", "--op", "Neg"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert int(lines["Relu"][0]) >= 1 and lines["Relu"][1] == "0"
    assert int(lines["Neg"][0]) >= 1


def test_verify_reports_wrong_kernels(fake, capsys, monkeypatch):
    from fake_device import kernels as fake_kernels

    key = onnxep.resolve_key("", "Neg", 17)
    broken = fake_kernels.lookup(key)
    monkeypatch.setitem(fake_kernels._kernels, key, type(broken)(key, lambda x: x))
    assert main(["verify", "fakedevice", "--op", "Neg", "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert any(case == "test_neg" for case, _ in results["Neg"]["failed"])
    assert results["Neg"]["passed"] == []
