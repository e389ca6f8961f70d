"""onnxep's CUDA provider on CuPy: arrays stay on the GPU, MatMul/Conv on cuBLAS, elementwise
chains fused into generated ``ElementwiseKernel``s, optional CUDA-graph replay.

Importing this package never imports CuPy (so it imports, and reports itself unavailable
with the reason, on machines without CuPy or a GPU). Options, with onnxruntime's names:
``device_id`` (which GPU, default 0) and ``enable_cuda_graph`` (default off).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

from onnxep.errors import InvalidArgument
from onnxep.provider import Provider, Segment, Support
from onnxep_cupy import conv, elementwise, linalg, normalization, resize, tensor  # noqa: F401
from onnxep_cupy._backend import cupy, cupy_status, to_host
from onnxep_cupy._registry import kernels
from onnxep_cupy.compiler import analyse
from onnxep_cupy.program import SegmentProgram

__all__ = ["ORT_TUNING_OPTIONS", "CuPyProvider", "kernels"]

_TRUE = ("1", "true", "yes", "on")
#: onnxruntime CUDA options that tune its own allocator and cuDNN: accepted and ignored, so a
#: script written for onnxruntime runs unchanged.
ORT_TUNING_OPTIONS = frozenset(
    {
        "arena_extend_strategy",
        "cudnn_conv1d_pad_to_nc1d",
        "cudnn_conv_algo_search",
        "cudnn_conv_use_max_workspace",
        "do_copy_in_default_stream",
        "enable_skip_layer_norm_strict_mode",
        "fuse_conv_bias",
        "gpu_external_alloc",
        "gpu_external_empty_cache",
        "gpu_external_free",
        "gpu_mem_limit",
        "has_user_compute_stream",
        "prefer_nhwc",
        "sdpa_kernel",
        "tunable_op_enable",
        "tunable_op_max_tuning_duration_ms",
        "tunable_op_tuning_enable",
        "use_ep_level_unified_stream",
        "use_tf32",
        "user_compute_stream",
    }
)


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in _TRUE


class CuPyProvider(Provider):
    """Float16/float32 kernels on an NVIDIA GPU through CuPy."""

    name = "CuPyExecutionProvider"
    device = "cuda"
    kernels = kernels
    version = "1"
    options_known: ClassVar[tuple[str, ...]] = ("device_id", "enable_cuda_graph")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - set(self.options_known) - ORT_TUNING_OPTIONS)
        if unknown:
            warnings.warn(
                f"{self.name} ignores unknown option(s) {unknown}; it knows "
                f"{list(self.options_known)}",
                RuntimeWarning,
                stacklevel=4,
            )
        try:
            self.device_id = int(self.options.get("device_id", 0))
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"{self.name}: device_id must be an integer") from exc
        self.enable_cuda_graph = _flag(self.options.get("enable_cuda_graph", "0"))
        #: The programs compiled by this provider instance, in plan order (for inspection).
        self.programs: list[SegmentProgram] = []

    @classmethod
    def is_available(cls) -> Support:
        """Yes only when CuPy imports and a CUDA device answers; else the reason."""
        ok, reason = cupy_status()
        return Support.yes() if ok else Support.no(reason)

    # --- device placement ---------------------------------------------------------------
    def device_context(self) -> contextlib.AbstractContextManager[Any]:
        """Makes ``device_id`` the current CUDA device."""
        return cupy().cuda.Device(self.device_id)

    def to_device(self, array: Any) -> Any:
        """Copy a host array to this provider's GPU (device arrays pass through)."""
        with self.device_context():
            return cupy().asarray(array)

    def to_host(self, array: Any) -> Any:
        """Copy a device array to a numpy array (host arrays pass through)."""
        return to_host(array)

    # --- compilation --------------------------------------------------------------------
    def compile(self, segment: Segment) -> Any:
        """Fold, fuse and emit the segment; wrap it in CUDA-graph replay if enabled."""
        found = {n.index: self.kernel_for(segment.info(n)) for n in segment.nodes}
        missing = [n.label for n in segment.nodes if found[n.index] is None]
        if missing:
            raise LookupError(f"no kernel for {missing}")
        analysis = analyse(segment, {i: k for i, k in found.items() if k is not None})
        program = SegmentProgram(analysis, self.to_device, self.to_host, self.device_context)
        self.programs.append(program)
        if self.enable_cuda_graph and program.graph_safe is None:
            from onnxep_cupy.cuda_graph import GraphRunner

            return GraphRunner(program, f"{self.name} segment {segment.index}")
        return program
