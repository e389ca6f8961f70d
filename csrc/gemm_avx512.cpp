// AVX-512 GEMM micro-kernel, compiled for avx512f only inside this file's functions
// (__attribute__((target))), so the extension still loads on CPUs without AVX-512.
#include <immintrin.h>

#include "onnxep/gemm_kernels.hpp"

namespace onnxep {
namespace detail {
namespace {

#ifndef ONNXEP_AVX512_MR  // tuning knobs: -DONNXEP_AVX512_MR=.. -DONNXEP_AVX512_NV=..
#define ONNXEP_AVX512_MR 12
#endif
#ifndef ONNXEP_AVX512_NV
#define ONNXEP_AVX512_NV 2
#endif
#ifndef ONNXEP_AVX512_KC
#define ONNXEP_AVX512_KC 256
#endif
constexpr int kMR = ONNXEP_AVX512_MR;
constexpr int kNV = ONNXEP_AVX512_NV;  // vectors of 16 floats per row: NR = 32 by default
constexpr int kNR = kNV * 16;

__attribute__((target("avx512f"))) void ukernel_avx512(std::int64_t kc, const float* a,
                                                        const float* b, float* c,
                                                        std::int64_t ldc, float beta) {
  __m512 acc[kMR][kNV];
#pragma GCC unroll 32
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    __m512 bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kNR), _MM_HINT_T0);
#pragma GCC unroll 32
    for (int i = 0; i < kMR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += kMR;
    b += kNR;
  }
  if (beta == 0.0f) {
#pragma GCC unroll 32
    for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
    }
    return;
  }
  const __m512 bb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      float* dst = c + i * ldc + 16 * v;
      _mm512_storeu_ps(dst, _mm512_fmadd_ps(bb, _mm512_loadu_ps(dst), acc[i][v]));
    }
  }
}

}  // namespace

GemmKernel avx512_gemm_kernel() {
  return {"avx512", kMR, kNR, &ukernel_avx512, (144 / kMR) * kMR, ONNXEP_AVX512_KC, 4096};
}

}  // namespace detail
}  // namespace onnxep
