// Matrix-vector products (GEMM with M == 1 or N == 1). Packing a panel of B would cost as
// much as the whole product there, so these read the matrix once, in its own layout:
// dot products along contiguous rows, or row-by-row axpy into the output.
#include <algorithm>
#include <vector>

#include "onnxep/gemm.hpp"
#include "onnxep/parallel.hpp"

#define ONNXEP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace onnxep {
namespace {

constexpr int kLanes = 16;
constexpr std::int64_t kGrainFlops = std::int64_t{1} << 16;  // multiply-adds per task

ONNXEP_CLONES float dot(const float* x, const float* y, std::int64_t n) {
  float lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += x[i + l] * y[i + l];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i] * y[i];
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

ONNXEP_CLONES void axpy(float a, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// out[j] = alpha * dot(v, rows[j]) + beta * out[j * inc] for j < count.
void dots(std::int64_t count, std::int64_t len, float alpha, const float* rows, std::int64_t ld,
          const float* v, float beta, float* out, std::int64_t inc, int threads) {
  parallel_range(count, std::max<std::int64_t>(1, kGrainFlops / std::max<std::int64_t>(len, 1)),
                 threads, [&](std::int64_t b, std::int64_t e) {
                   for (std::int64_t j = b; j < e; ++j) {
                     const float d = alpha * dot(rows + j * ld, v, len);
                     out[j * inc] = beta == 0.0f ? d : d + beta * out[j * inc];
                   }
                 });
}

// out[j] = alpha * sum_p v[p] * rows[p][j] + beta * out[j] (out contiguous, count values).
void axpys(std::int64_t count, std::int64_t len, float alpha, const float* rows, std::int64_t ld,
           const float* v, float beta, float* out, int threads) {
  parallel_range(count, std::max<std::int64_t>(64, kGrainFlops / std::max<std::int64_t>(len, 1)),
                 threads, [&](std::int64_t b, std::int64_t e) {
                   std::vector<float> acc(static_cast<std::size_t>(e - b), 0.0f);
                   for (std::int64_t p = 0; p < len; ++p) axpy(v[p], rows + p * ld + b, acc.data(), e - b);
                   for (std::int64_t j = b; j < e; ++j) {
                     const float d = alpha * acc[j - b];
                     out[j] = beta == 0.0f ? d : d + beta * out[j];
                   }
                 });
}

std::vector<float> gather(const float* x, std::int64_t n, std::int64_t stride) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = x[i * stride];
  return v;
}

}  // namespace

bool sgemv(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc, int threads) {
  if (M == 1) {  // C[0, :] = a . op(B), a = row 0 of op(A)
    const std::vector<float> a = trans_a ? gather(A, K, lda) : std::vector<float>(A, A + K);
    if (trans_b) {
      dots(N, K, alpha, B, ldb, a.data(), beta, C, 1, threads);
    } else {
      axpys(N, K, alpha, B, ldb, a.data(), beta, C, threads);
    }
    return true;
  }
  if (N == 1) {  // C[:, 0] = op(A) . b, b = column 0 of op(B)
    const std::vector<float> b = trans_b ? std::vector<float>(B, B + K) : gather(B, K, ldb);
    if (!trans_a) {
      dots(M, K, alpha, A, lda, b.data(), beta, C, ldc, threads);
      return true;
    }
    if (ldc != 1) return false;  // an axpy over a strided column: leave it to the GEMM
    axpys(M, K, alpha, A, lda, b.data(), beta, C, threads);
    return true;
  }
  return false;
}

}  // namespace onnxep
