// Internal: the GEMM micro-kernels and what the driver needs to know about them.
#pragma once

#include <cstdint>

namespace onnxep {
namespace detail {

// One MR x NR tile: C = A_panel * B_panel (+ beta * C when beta != 0; C is not read when
// beta == 0). a: packed a[p*MR + i]; b: packed b[p*NR + j]; C rows are ldc floats apart.
using MicroKernel = void (*)(std::int64_t kc, const float* a, const float* b, float* c,
                             std::int64_t ldc, float beta);

struct GemmKernel {
  const char* name;
  int mr;
  int nr;
  MicroKernel fn;
  std::int64_t mc;  // rows of A packed at once (multiple of mr): sized for L2
  std::int64_t kc;  // depth of one packed block: a B micro-panel kc x nr fits in L1
  std::int64_t nc;  // columns of B packed at once (multiple of nr): sized for L3
};

GemmKernel scalar_gemm_kernel();
GemmKernel avx2_gemm_kernel();
GemmKernel avx512_gemm_kernel();

}  // namespace detail
}  // namespace onnxep
