"""The BLAS the numba kernels call: a private, single-threaded instance of numpy's OpenBLAS.

numpy's wheels bundle OpenBLAS (``numpy.libs/libscipy_openblas*.so``). Loading a *copy* of
that file (in the cache folder) gives this process a second, independent OpenBLAS whose
settings are this provider's own:

* ``OPENBLAS_NUM_THREADS=1`` at its load: it never starts a thread pool, so numba's threads
  are the only ones (two pools on the same cores spin against each other), and numpy's
  own OpenBLAS keeps its settings;
* ``OPENBLAS_CORETYPE=SkylakeX`` when the CPU has AVX-512 but numpy's instance runs an
  AVX2 kernel set on its own (a CPU its detection does not know): GEMMs run about 1.7x
  faster. A user-set ``OPENBLAS_CORETYPE`` is respected (it may be there to avoid
  AVX-512); ``ONNXEP_OPENBLAS_CORETYPE`` chooses the kernel set of this copy alone.

The copy is checked (a small GEMM against numpy) before use. When it cannot be made (or
``ONNXEP_NUMBA_PRIVATE_BLAS=0``), numpy's instance is used and its thread count set to 1,
process-wide, on the first GEMM (restoring it per call wakes its pool, whose threads then
spin against numba's: ResNet-50 ran 3x slower on 2 cores).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from onnxep.blas_threads import numpy_openblas, numpy_openblas_path
from onnxep_numba._jit import cache_dir

__all__ = ["Blas", "blas"]

_AVX512 = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"}


@dataclasses.dataclass(frozen=True)
class Blas:
    """ctypes entry points of one OpenBLAS instance."""

    sgemm: Any
    dgemm: Any
    sgemv: Any
    dgemv: Any
    set_threads: Any
    get_threads: Any
    core: str
    private: bool

    def single_threaded(self) -> None:
        """Make sure GEMM calls do not start OpenBLAS threads (numba's are the workers)."""
        if self.get_threads() != 1:
            self.set_threads(1)


def _bind(lib: ctypes.CDLL, private: bool) -> Blas | None:
    for suffix, index in (("64_", ctypes.c_int64), ("", ctypes.c_int)):
        names = [
            f"scipy_cblas_sgemm{suffix}",
            f"scipy_cblas_dgemm{suffix}",
            f"scipy_cblas_sgemv{suffix}",
            f"scipy_cblas_dgemv{suffix}",
            f"scipy_openblas_set_num_threads{suffix}",
            f"scipy_openblas_get_num_threads{suffix}",
            f"scipy_openblas_get_corename{suffix}",
        ]
        if not all(hasattr(lib, n) for n in names):
            continue
        c_int, ptr = ctypes.c_int, ctypes.c_int64
        funcs = []
        for name, real in ((names[0], ctypes.c_float), (names[1], ctypes.c_double)):
            proto = ctypes.CFUNCTYPE(
                None,
                c_int,
                c_int,
                c_int,
                index,
                index,
                index,
                real,
                ptr,
                index,
                ptr,
                index,
                real,
                ptr,
                index,
            )
            funcs.append(proto((name, lib)))
        for name, real in ((names[2], ctypes.c_float), (names[3], ctypes.c_double)):
            # order, trans, M, N, alpha, A, lda, X, incX, beta, Y, incY
            gemv = ctypes.CFUNCTYPE(
                None, c_int, c_int, index, index, real, ptr, index, ptr, index, real, ptr, index
            )
            funcs.append(gemv((name, lib)))
        setter, getter, corename = (getattr(lib, n) for n in names[4:])
        setter.argtypes, setter.restype = [c_int], None
        getter.argtypes, getter.restype = [], c_int
        corename.argtypes, corename.restype = [], ctypes.c_char_p
        return Blas(*funcs, setter, getter, corename().decode(), private)
    return None


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _private_copy(source: str) -> Path | None:
    stat = os.stat(source)
    tag = hashlib.sha1(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    for folder in (cache_dir(), Path(tempfile.gettempdir())):
        if folder is None:
            continue
        target = folder / f"onnxep_openblas_{tag}.so"
        try:
            if not target.exists():
                partial = target.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(source, partial)
                os.replace(partial, target)
            return target
        except OSError:
            continue
    return None


def _load_private(source: str, shared: Blas) -> Blas | None:
    target = _private_copy(source)
    if target is None:
        return None
    env = {"OPENBLAS_NUM_THREADS": "1"}
    avx512 = shared.core in ("Haswell", "Zen") and _cpu_flags() >= _AVX512
    if os.environ.get("ONNXEP_OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = os.environ["ONNXEP_OPENBLAS_CORETYPE"]
    elif "OPENBLAS_CORETYPE" not in os.environ and avx512:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # read by OpenBLAS when it initialises (at load or first call)
    try:
        private = _bind(ctypes.CDLL(str(target)), private=True)
        if private is None or private.get_threads() != 1 or not _gemm_ok(private):
            return None
        return private
    except OSError:
        return None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=1)
def blas() -> Blas | None:
    """The OpenBLAS instance GEMMs go to, or None when numpy bundles none."""
    library = numpy_openblas()
    shared = None if library is None else _bind(library, private=False)
    if shared is None:
        return None
    if os.environ.get("ONNXEP_NUMBA_PRIVATE_BLAS", "1") == "0":
        return shared
    return _load_private(numpy_openblas_path(), shared) or shared


def _gemm_ok(lib: Blas) -> bool:
    """A 37x53x29 single-precision GEMM through ``lib`` agrees with numpy."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 53)).astype(np.float32)
    b = rng.standard_normal((53, 29)).astype(np.float32)
    c = np.zeros((37, 29), np.float32)
    lib.sgemm(
        101, 111, 111, 37, 29, 53, 1.0, a.ctypes.data, 53, b.ctypes.data, 29, 0.0, c.ctypes.data, 29
    )
    return bool(np.allclose(c, a @ b, rtol=1e-4, atol=1e-4))
