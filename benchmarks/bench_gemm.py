"""The C++ provider's GEMM against numpy's matmul (OpenBLAS) at the same thread count.

Run from the repository root::

    python benchmarks/bench_gemm.py                  # every CPU of this process
    python benchmarks/bench_gemm.py --threads 1      # single-threaded, both sides

Thread count: numpy's BLAS is limited with threadpoolctl when it is installed; otherwise
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS are set *before numpy is imported*
(which is why this script imports numpy inside ``main``). The C++ GEMM gets the same count
through its ``threads=`` argument. Each size is timed in alternating blocks (C++, numpy,
C++, ...; a pause and a warm-up call before each), so both see the same machine noise and
neither inherits the other's busy threads; the figure is the median of all timed calls. Results are
printed as a Markdown table and written to ``benchmarks/results/gemm.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

SQUARE = [64, 128, 256, 512, 1024, 2048]
TRANSFORMER = [(128, 768, 768), (128, 768, 3072), (128, 3072, 768)]
DEFAULT_JSON = pathlib.Path(__file__).parent / "results" / "gemm.json"
# Seconds before each block: lets OpenBLAS's spinning threads go to sleep (after 0.3 s they
# still held the second core at 512^3, and the C++ block ran on one).
PAUSE = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="0: every CPU (default)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per size (max)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per size (max)")
    parser.add_argument("--json", type=pathlib.Path, default=DEFAULT_JSON)
    parser.add_argument("--sizes", default="", help="e.g. 512,1024 or 128x768x3072")
    return parser.parse_args(argv)


def cpu_count() -> int:
    """CPUs this process may run on."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[str]:
    """Limit numpy's BLAS to ``n`` threads; yields how it was done."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "environment variables set before importing numpy"
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield "threadpoolctl"


def shapes(spec: str) -> list[tuple[int, int, int]]:
    """(M, N, K) triples: the defaults, or those of ``--sizes``."""
    if not spec:
        return [(n, n, n) for n in SQUARE] + list(TRANSFORMER)
    result = []
    for item in spec.split(","):
        dims = [int(d) for d in item.lower().split("x")]
        m, n, k = dims if len(dims) == 3 else (dims[0],) * 3
        result.append((m, n, k))
    return result


def measure(
    fns: dict[str, Callable[[], Any]], repeats: int, budget: float, rounds: int = 3
) -> dict[str, tuple[float, float]]:
    """(median wall seconds, median process CPU seconds) of each function.

    The functions take turns in blocks (C++ block, numpy block, C++ block, ...), each block
    after a warm-up call and a pause: OpenBLAS's threads keep spinning for a while after a
    call returns and would otherwise take the cores from whatever runs next.
    """
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    per_block = max(1, repeats // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(PAUSE)
            fn()
            start = time.perf_counter()
            for _ in range(per_block):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                if time.perf_counter() - start > budget / (rounds * len(fns)):
                    break
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def machine(threads: int, how: str, isa: str) -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": model,
        "cpus_available": cpu_count(),
        "threads": threads,
        "blas_threads_set_by": how,
        "cpp_gemm_isa": isa,
        "python": platform.python_version(),
        "load_average_1min_at_start": load,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time every shape; returns the JSON document."""
    import numpy as np

    from onnxep_cpp import _kernels

    threads = args.threads or cpu_count()
    rng = np.random.default_rng(0)
    rows = []
    with blas_threads(threads) as how:
        info = machine(threads, how, _kernels.gemm_isa())
        info["numpy"] = np.__version__
        for m, n, k in shapes(args.sizes):
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            np.testing.assert_allclose(
                _kernels.matmul(a, b, threads=threads), a @ b, rtol=1e-3, atol=1e-2 * np.sqrt(k)
            )
            contenders: dict[str, Callable[[], Any]] = {
                "cpp": functools.partial(_kernels.matmul, a, b, threads=threads),
                "numpy": functools.partial(np.matmul, a, b),
            }
            t = measure(contenders, args.repeats, args.budget)
            flops = 2.0 * m * n * k
            (cpp_s, cpp_cpu), (np_s, np_cpu) = t["cpp"], t["numpy"]
            row = {
                "m": m, "n": n, "k": k,
                "cpp_ms": cpp_s * 1e3, "numpy_ms": np_s * 1e3,
                "cpp_gflops": flops / cpp_s / 1e9, "numpy_gflops": flops / np_s / 1e9,
                "ratio": np_s / cpp_s,
                "cpp_cpu_per_wall": cpp_cpu / cpp_s, "numpy_cpu_per_wall": np_cpu / np_s,
            }  # fmt: skip
            rows.append(row)
            print(f"  {m}x{n}x{k}: C++ {row['cpp_gflops']:.0f} GFLOP/s, "
                  f"numpy {row['numpy_gflops']:.0f} GFLOP/s", file=sys.stderr)  # fmt: skip
    return {"machine": info, "results": rows}


def markdown(doc: dict[str, Any]) -> str:
    """The results as a Markdown table (ratio > 1: the C++ GEMM is faster)."""
    info = doc["machine"]
    lines = [
        f"GEMM, float32, {info['threads']} thread(s) each, {info['cpu']} "
        f"(C++ path: {info['cpp_gemm_isa']}); median of repeats after warm-up. CPU/wall: "
        "CPU seconds the process used per wall second (below the thread count when other "
        "processes share the cores; OpenBLAS threads also count while they spin)",
        "",
        "| M x N x K | C++ ms | numpy ms | C++ GFLOP/s | numpy GFLOP/s | C++ / numpy "
        "| CPU/wall C++ | CPU/wall numpy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        lines.append(
            f"| {r['m']}x{r['n']}x{r['k']} | {r['cpp_ms']:.3f} | {r['numpy_ms']:.3f} | "
            f"{r['cpp_gflops']:.1f} | {r['numpy_gflops']:.1f} | {r['ratio']:.2f} | "
            f"{r['cpp_cpu_per_wall']:.2f} | {r['numpy_cpu_per_wall']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if "numpy" not in sys.modules:  # without threadpoolctl, only the environment works
        threads = str(args.threads or cpu_count())
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = threads
    doc = run(args)
    print(markdown(doc))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
