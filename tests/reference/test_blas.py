"""blas.matmul: numpy's results, and OpenBLAS's thread count set to 1 only around small
products and always restored, also when threads overlap."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from onnxep.reference import blas


class FakeOpenBLAS:
    """Thread-count controls that record what blas.matmul asks of them."""

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
    monkeypatch.setattr(blas, "_controls", (controls.get, controls.set))
    return controls


def small_product() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)  # 68 x 68 x 196: above OpenBLAS's own one-thread size
    return rng.random((68, 68), np.float32), rng.random((68, 196), np.float32)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((68, 68), (68, 196)), ((4, 68, 68), (4, 68, 196)), ((300,), (300, 900)), ((7, 5), (5,))],
)
def test_matches_numpy(a_shape, b_shape):
    rng = np.random.default_rng(1)
    a, b = rng.random(a_shape, np.float32), rng.random(b_shape, np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)  # thread counts round differently
    np.testing.assert_allclose(blas.matmul(a, b), expected, rtol=1e-5)
    out = np.empty(expected.shape, np.float32)
    assert blas.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_small_product_runs_on_one_thread_and_restores(fake):
    blas.matmul(*small_product())
    assert fake.calls == [1, 4]
    assert fake.threads == 4


def test_tiny_large_and_integer_products_leave_threads_alone(fake):
    blas.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))  # OpenBLAS: 1 already
    blas.matmul(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))
    blas.matmul(np.ones((68, 68), np.int64), np.ones((68, 196), np.int64))  # not BLAS
    assert fake.calls == []


def test_single_threaded_caller_is_left_alone(fake):
    fake.threads = 1
    blas.matmul(*small_product())
    assert fake.calls == []


def test_error_inside_product_restores(fake):
    a, _ = small_product()
    with pytest.raises(ValueError):
        blas.matmul(a, np.ones((68, 196), np.float32), out=np.empty((2, 2), np.float32))
    assert fake.threads == 4


def test_overlapping_threads_restore_the_original_count(fake, monkeypatch):
    """The second section starts while the first is inside its product: it must not save 1
    as the count to restore."""
    first_inside, second_done = threading.Event(), threading.Event()
    real_matmul = np.matmul

    def slow_matmul(a, b, out=None):
        if threading.current_thread().name == "first":
            first_inside.set()
            second_done.wait(5)
        return real_matmul(a, b, out=out)

    monkeypatch.setattr(blas.np, "matmul", slow_matmul)
    first = threading.Thread(target=blas.matmul, args=small_product(), name="first")
    first.start()
    assert first_inside.wait(5)
    blas.matmul(*small_product())
    assert fake.threads == 1  # the first section is still running
    second_done.set()
    first.join(5)
    assert fake.threads == 4
    assert fake.calls == [1, 4]


@pytest.mark.skipif(blas._controls is None, reason="numpy's BLAS is not OpenBLAS")
def test_real_openblas_count_is_restored():
    get = blas._controls[0]
    before = get()
    blas.matmul(*small_product())
    assert get() == before
