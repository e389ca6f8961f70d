// AVX2+FMA GEMM micro-kernel (6 x 16), compiled for avx2/fma only inside its functions.
#include <immintrin.h>

#include "onnxep/gemm_kernels.hpp"

namespace onnxep {
namespace detail {
namespace {

constexpr int kMR = 6;
constexpr int kNV = 2;  // vectors of 8 floats per row: NR = 16
constexpr int kNR = kNV * 8;

__attribute__((target("avx2,fma"))) void ukernel_avx2(std::int64_t kc, const float* a,
                                                       const float* b, float* c, std::int64_t ldc,
                                                       float beta) {
  __m256 acc[kMR][kNV];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm256_setzero_ps();
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    __m256 bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += kMR;
    b += kNR;
  }
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) _mm256_storeu_ps(c + i * ldc + 8 * v, acc[i][v]);
    }
    return;
  }
  const __m256 bb = _mm256_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      float* dst = c + i * ldc + 8 * v;
      _mm256_storeu_ps(dst, _mm256_fmadd_ps(bb, _mm256_loadu_ps(dst), acc[i][v]));
    }
  }
}

}  // namespace

GemmKernel avx2_gemm_kernel() { return {"avx2", kMR, kNR, &ukernel_avx2, 120, 256, 4096}; }

}  // namespace detail
}  // namespace onnxep
