// Single-precision matrix multiplication: packed panels, cache blocking, a SIMD
// micro-kernel chosen at run time (AVX-512, AVX2+FMA, or portable C++), std::threads.
#pragma once

#include <cstdint>
#include <string>

namespace onnxep {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K: A[i*lda + p],
// or A[p*lda + i] when trans_a. op(B) is K x N: B[p*ldb + j], or B[j*ldb + p] when trans_b.
// With beta == 0, C is written without being read (it may hold garbage or NaN).
void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc, int threads);

// The M == 1 and N == 1 cases of sgemm without packing; false when it does not apply
// (sgemm calls it first).
bool sgemv(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc, int threads);

// `batch` independent products C_b = op(A_b) op(B_b) (alpha 1, beta 0) with element offsets
// between consecutive matrices (0 repeats one operand). Small products run one per thread.
void sgemm_batched(std::int64_t batch, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                   std::int64_t K, const float* A, std::int64_t lda, const std::int64_t* a_offsets,
                   const float* B, std::int64_t ldb, const std::int64_t* b_offsets, float* C,
                   std::int64_t ldc, int threads);

// The micro-kernel in use: "avx512", "avx2" or "scalar".
std::string gemm_isa();

// Forces a micro-kernel ("auto" restores the best one); false when the CPU lacks it.
bool set_gemm_isa(const std::string& isa);

}  // namespace onnxep
