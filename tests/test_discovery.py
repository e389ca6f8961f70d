"""Finding providers through entry points, as a vendor's pip package ships them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from graphs import model, node

import onnxep
from onnxep import discovery

VENDOR = '''
from __future__ import annotations
import numpy as np
from onnxep import KernelRegistry, Provider, Support

kernels = KernelRegistry()

@kernels.register("Relu", versions=(14,), dtypes=("float32",))
def relu(x):
    return np.maximum(x, 0).astype(x.dtype)

class AcmeProvider(Provider):
    """Relu on an Acme accelerator (host memory here)."""
    name = "AcmeExecutionProvider"
    kernels = kernels
    version = "1.2"
'''


@pytest.fixture
def vendor_site(tmp_path, monkeypatch):
    """A site folder holding an installed 'acme-onnxep' and a broken plugin."""
    (tmp_path / "acme_onnxep.py").write_text(VENDOR)
    (tmp_path / "broken_onnxep.py").write_text("raise ImportError('libacme.so not found')\n")
    info = tmp_path / "acme_onnxep-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-onnxep\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        "[onnxep.providers]\n"
        "AcmeExecutionProvider = acme_onnxep:AcmeProvider\n"
        "BrokenExecutionProvider = broken_onnxep:BrokenProvider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    discovery.refresh()
    yield tmp_path
    discovery.refresh()
    sys.modules.pop("acme_onnxep", None)


def test_vendor_package_found_by_entry_point(vendor_site):
    entries = discovery.entries()
    assert entries["AcmeExecutionProvider"].distribution == "acme-onnxep"
    assert "AcmeExecutionProvider" in onnxep.get_available_providers()
    m = model([node("Relu", ["x"], ["y"])], {"x": [4]}, ["y"], opset=14)
    session = onnxep.InferenceSession(m, providers=["acme"])
    assert session.assignment("y") == "AcmeExecutionProvider"
    x = np.array([-1, 0, 2, -3], dtype=np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], [0, 0, 2, 0])


def test_broken_plugin_is_unavailable_with_reason_and_breaks_nothing(vendor_site):
    status = discovery.entries()["BrokenExecutionProvider"].availability()
    assert not status and "libacme.so not found" in status.reason
    assert "BrokenExecutionProvider" not in onnxep.get_available_providers()
    with pytest.warns(RuntimeWarning, match="BrokenExecutionProvider is not available.*libacme"):
        session = onnxep.InferenceSession(
            model([node("Relu", ["x"], ["y"])], {"x": [1]}, ["y"]), providers=["broken"]
        )
    assert session.get_providers() == ["ReferenceExecutionProvider"]


def test_listing_providers_imports_none_of_them(vendor_site):
    discovery.refresh()
    names = onnxep.get_all_providers()
    assert "AcmeExecutionProvider" in names
    assert "acme_onnxep" not in sys.modules


def test_import_onnxep_imports_no_numba_or_cupy():
    code = textwrap.dedent(
        """
        import sys, onnxep
        onnxep.get_all_providers()
        heavy = ('numba', 'cupy', 'onnxep_numba', 'onnxep_cupy', 'onnxep_cpp')
        bad = [m for m in sys.modules if m.split('.')[0] in heavy]
        print(bad)
        sys.exit(1 if bad else 0)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_register_provider_rejects_non_providers():
    with pytest.raises(TypeError, match="Provider subclass"):
        onnxep.register_provider(object)  # type: ignore[arg-type]


def test_default_and_cpu_chains_take_one_cpu_accelerator():
    from onnxep.discovery import CPU_ACCELERATORS, default_chain

    m = model([node("Relu", ["x"], ["y"])], {"x": [2]}, ["y"])
    chain = onnxep.InferenceSession(m).get_providers()
    assert chain == default_chain()
    assert chain[-1] == "ReferenceExecutionProvider"
    assert sum(name in CPU_ACCELERATORS for name in chain) <= 1
    available = [n for n in CPU_ACCELERATORS if n in onnxep.get_available_providers()]
    assert chain[-2:-1] == available[:1]
    cpu = onnxep.InferenceSession(m, providers=["CPUExecutionProvider"]).get_providers()
    assert cpu == [*available[:1], "ReferenceExecutionProvider"]
