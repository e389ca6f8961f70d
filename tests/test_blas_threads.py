"""intra_op_num_threads caps numpy's OpenBLAS threads while a session runs, and the count is
restored afterwards, also when runs overlap or fail."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from graphs import model, node

import onnxep
from onnxep import blas_threads


class FakeOpenBLAS:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.calls: list[int] = []

    def get(self) -> int:
        return self.threads

    def set(self, threads: int) -> None:
        self.calls.append(threads)
        self.threads = threads


@pytest.fixture
def fake(monkeypatch):
    controls = FakeOpenBLAS(4)
    monkeypatch.setattr(blas_threads, "_controls", (controls.get, controls.set))
    return controls


def test_a_cap_applies_inside_and_restores(fake):
    with blas_threads.capped(1):
        assert fake.threads == 1
    assert fake.threads == 4
    with blas_threads.capped(None), blas_threads.capped(0):
        pass
    assert fake.calls == [1, 4]


def test_a_cap_above_the_count_does_not_raise_it(fake):
    with blas_threads.capped(16):
        assert fake.threads == 4
    assert fake.threads == 4


def test_overlapping_caps_take_the_smallest_and_restore_the_original(fake):
    inside, release = threading.Event(), threading.Event()

    def hold(threads: int) -> None:
        with blas_threads.capped(threads):
            inside.set()
            release.wait(5)

    other = threading.Thread(target=hold, args=(2,))
    other.start()
    assert inside.wait(5) and fake.threads == 2
    with blas_threads.capped(1):
        assert fake.threads == 1
    assert fake.threads == 2  # the other run still holds its cap
    release.set()
    other.join(5)
    assert fake.threads == 4


def test_an_error_inside_restores(fake):
    with pytest.raises(RuntimeError), blas_threads.capped(1):
        raise RuntimeError("boom")
    assert fake.threads == 4


def _session(threads: int) -> onnxep.InferenceSession:
    options = onnxep.SessionOptions()
    options.intra_op_num_threads = threads
    graph = model([node("MatMul", ["x", "x"], ["y"])], {"x": [8, 8]}, ["y"])
    return onnxep.InferenceSession(graph.SerializeToString(), options, providers=["reference"])


def test_a_session_caps_its_runs(fake, monkeypatch):
    seen = []
    real = np.matmul

    def spy(*args, **kwargs):
        seen.append(fake.threads)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    x = np.eye(8, dtype=np.float32)
    np.testing.assert_array_equal(_session(1).run(None, {"x": x})[0], x)
    assert seen and set(seen) == {1}
    assert fake.threads == 4
    seen.clear()
    _session(0).run(None, {"x": x})  # 0: onnxruntime's "default", no cap
    assert set(seen) == {4}


@pytest.mark.skipif(blas_threads.controls() is None, reason="numpy's BLAS is not OpenBLAS")
def test_the_real_openblas_count_is_restored_after_a_run():
    get = blas_threads.controls()[0]
    before = get()
    _session(1).run(None, {"x": np.ones((8, 8), np.float32)})
    assert get() == before
