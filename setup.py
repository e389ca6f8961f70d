"""Builds the optional C++ extension ``onnxep_cpp._kernels`` from ``csrc/``.

Metadata lives in pyproject.toml. If the extension cannot be compiled (no compiler, no
headers), the install still succeeds and the C++ provider reports itself unavailable.
"""

from __future__ import annotations

import os
import sys
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext, naive_recompile
from setuptools import setup

ParallelCompile("ONNXEP_BUILD_JOBS", needs_recompile=naive_recompile).install()


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the C++ provider cannot be built."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(
                f"onnxep: C++ provider not built ({exc}); it will report itself unavailable",
                file=sys.stderr,
            )

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(
                f"onnxep: building {ext.name} failed ({exc}); the C++ provider stays off",
                file=sys.stderr,
            )


sources = sorted(glob("csrc/**/*.cpp", recursive=True))
extra = os.environ.get("ONNXEP_CXXFLAGS", "").split()  # e.g. sanitizers (scripts/sanitize.sh)
extra_link = os.environ.get("ONNXEP_LDFLAGS", "").split()
ext_modules = (
    [
        Pybind11Extension(
            "onnxep_cpp._kernels",
            sources,
            include_dirs=["csrc/include"],
            cxx_std=17,
            extra_compile_args=["-O3", "-fno-math-errno", *extra],
            extra_link_args=["-pthread", *extra_link],
        )
    ]
    if sources
    else []
)

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
