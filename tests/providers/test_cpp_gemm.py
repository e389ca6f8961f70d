"""The GEMM of the compiled module ``onnxep_cpp._kernels`` against numpy, and its threads.

Odd sizes (1, 7, 127, not multiples of any block size), every operand layout, every SIMD
path this CPU has, several thread counts, empty and zero-depth products, batch broadcasting,
non-contiguous and misaligned operands; the GIL released, the pool surviving fork().
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings

import numpy as np
import pytest

import onnxep_cpp
from onnxep_cpp._registry import load_error, native

pytestmark = pytest.mark.skipif(
    native is None, reason=f"the C++ extension is not built: {load_error}"
)

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape, dtype=np.float32)


def available_isas() -> list[str]:
    found = []
    for isa in ("scalar", "avx2", "avx512"):
        if native is not None and native.set_gemm_isa(isa):
            found.append(isa)
    if native is not None:
        native.set_gemm_isa("auto")
    return found


@pytest.fixture(params=available_isas() or ["none"])
def isa(request: pytest.FixtureRequest):
    assert native.set_gemm_isa(request.param)
    yield request.param
    native.set_gemm_isa("auto")


def ref_gemm(a, b, c, alpha, beta, ta, tb):
    a64 = (a.T if ta else a).astype(np.float64)
    b64 = (b.T if tb else b).astype(np.float64)
    y = alpha * (a64 @ b64)
    return y if c is None else y + beta * c


# --- GEMM -----------------------------------------------------------------------------

SIZES = [(1, 1, 1), (7, 5, 3), (1, 127, 64), (127, 1, 33), (127, 129, 131), (45, 300, 513)]


@pytest.mark.parametrize(("m", "n", "k"), SIZES)
@pytest.mark.parametrize(("ta", "tb"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_odd_sizes_every_isa(isa, m, n, k, ta, tb):
    a = rand(k, m) if ta else rand(m, k)
    b = rand(n, k) if tb else rand(k, n)
    c = rand(m, n)
    y = native.gemm(a, b, c, alpha=0.75, beta=-1.5, trans_a=bool(ta), trans_b=bool(tb))
    np.testing.assert_allclose(y, ref_gemm(a, b, c, 0.75, -1.5, ta, tb), rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("c_shape", [(), (1,), (40,), (1, 40), (33, 1), (33, 40), (1, 1)])
def test_gemm_c_broadcasts(c_shape):
    a, b, c = rand(33, 20), rand(20, 40), rand(*c_shape)
    np.testing.assert_allclose(
        native.gemm(a, b, c, beta=0.5), ref_gemm(a, b, c, 1.0, 0.5, 0, 0), rtol=1e-5, atol=1e-5
    )


def test_gemm_without_c_and_with_beta_zero_ignores_c():
    a, b = rand(9, 4), rand(4, 6)
    c = np.full((9, 6), np.nan, np.float32)
    np.testing.assert_allclose(native.gemm(a, b), a @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(native.gemm(a, b, c, beta=0.0), a @ b, rtol=1e-5, atol=1e-6)


def test_gemm_empty_and_zero_depth():
    assert native.gemm(rand(0, 5), rand(5, 3)).shape == (0, 3)
    c = rand(4, 3)
    np.testing.assert_allclose(native.gemm(rand(4, 0), rand(0, 3), c, beta=2.0), 2 * c)


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_gemm_thread_counts_agree(threads):
    a, b = rand(300, 257), rand(257, 290)
    expected = native.gemm(a, b, threads=1)
    np.testing.assert_array_equal(native.gemm(a, b, threads=threads), expected)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((5,), (5,)),
        ((5,), (5, 3)),
        ((4, 5), (5,)),
        ((2, 3, 4, 5), (5, 6)),
        ((3, 1, 4, 5), (2, 5, 6)),
        ((1, 4, 5), (3, 5, 7)),
        ((6,), (2, 6, 3)),
        ((2, 0, 5), (5, 4)),
        ((3, 4, 0), (3, 0, 2)),
    ],
)
def test_matmul_broadcasting_and_vectors(a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape)
    y = native.matmul(a, b)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_matmul_non_contiguous_and_misaligned_inputs_are_copied_once():
    a = rand(40, 30)[::2, ::3]  # strided view
    b = np.asfortranarray(rand(10, 8))
    raw = np.zeros(4 * 10 * 8 + 1, np.uint8)[1:].view(np.float32).reshape(10, 8)
    raw[...] = b
    assert not raw.flags.aligned
    for rhs in (b, raw):
        np.testing.assert_allclose(native.matmul(a, rhs), a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_accepts_numpy_scalars_as_zero_d():
    with pytest.raises(ValueError, match="rank >= 1"):
        native.matmul(np.float32(2.0), rand(3))


def test_gil_is_released_so_threads_overlap():
    a, b = rand(256, 256), rand(256, 256)
    expected = native.matmul(a, b, threads=1)
    results: list[np.ndarray] = []
    workers = [
        threading.Thread(target=lambda: results.append(native.matmul(a, b, threads=2)))
        for _ in range(4)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_main_thread_runs_while_a_kernel_computes():
    """With the GIL never forced to switch, the main thread can only run while the worker
    thread is inside the kernel if the kernel released the GIL."""
    a = rand(1536, 1536)
    started, state = threading.Event(), {"done": False}

    def work() -> None:
        started.set()
        native.matmul(a, a, threads=1)
        state["done"] = True

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        ran_during_kernel = not state["done"]
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert ran_during_kernel, "the main thread was blocked for the whole kernel (GIL held)"


def _child_matmul(queue) -> None:  # runs in a forked child
    a = np.ones((200, 300), np.float32)
    queue.put(float(native.matmul(a, a.T, threads=2)[0, 0]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_thread_pool_survives_fork():
    native.matmul(rand(300, 300), rand(300, 300), threads=2)  # the parent's pool exists
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_matmul, args=(queue,))
        child.start()
        child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in the thread pool")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 300.0


def test_isa_and_threads_are_reported():
    assert onnxep_cpp.isa() in ("avx512", "avx2", "scalar")
    assert native.default_threads() >= 1
    assert native.set_gemm_isa("sse9") is False
