// The GEMM driver: run-time kernel choice, thread grid, cache blocking and packing.
//
// Each thread gets one rectangle of C and runs the classic five-loop blocked algorithm on
// it (Goto/BLIS): pack a kc x nc block of B (L3), pack an mc x kc block of A (L2), then
// sweep micro-kernels over MR x NR tiles with the kc x NR B micro-panel hot in L1.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "onnxep/gemm.hpp"
#include "onnxep/gemm_kernels.hpp"
#include "onnxep/parallel.hpp"

namespace onnxep {
namespace detail {
namespace {

constexpr int kScalarMR = 4;
constexpr int kScalarNR = 16;

void ukernel_scalar(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc,
                    float beta) {
  float acc[kScalarMR][kScalarNR] = {};
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < kScalarMR; ++i) {
      const float av = a[i];
      for (int j = 0; j < kScalarNR; ++j) acc[i][j] += av * b[j];
    }
    a += kScalarMR;
    b += kScalarNR;
  }
  for (int i = 0; i < kScalarMR; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < kScalarNR; ++j) row[j] = beta == 0.0f ? acc[i][j] : acc[i][j] + beta * row[j];
  }
}

}  // namespace

GemmKernel scalar_gemm_kernel() {
  return {"scalar", kScalarMR, kScalarNR, &ukernel_scalar, 128, 256, 4096};
}

}  // namespace detail

namespace {

using detail::GemmKernel;

constexpr std::int64_t kMinWorkPerThread = std::int64_t{1} << 20;  // multiply-adds
constexpr int kMaxTile = 16 * 64;                                  // MR * NR of any kernel
#ifndef ONNXEP_TASKS_PER_THREAD  // tuning knobs (see benchmarks/bench_gemm.py)
#define ONNXEP_TASKS_PER_THREAD 4
#endif
#ifndef ONNXEP_MIN_TASK_SIDE
#define ONNXEP_MIN_TASK_SIDE 256
#endif
constexpr std::int64_t kMinTaskArea = ONNXEP_MIN_TASK_SIDE * ONNXEP_MIN_TASK_SIDE;  // C elements

GemmKernel best_kernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return detail::avx512_gemm_kernel();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return detail::avx2_gemm_kernel();
  }
  return detail::scalar_gemm_kernel();
}

std::atomic<int> forced_isa{0};  // 0 auto, 1 scalar, 2 avx2, 3 avx512

GemmKernel active_kernel() {
  switch (forced_isa.load(std::memory_order_relaxed)) {
    case 1:
      return detail::scalar_gemm_kernel();
    case 2:
      return detail::avx2_gemm_kernel();
    case 3:
      return detail::avx512_gemm_kernel();
    default: {
      static const GemmKernel best = best_kernel();
      return best;
    }
  }
}

// Operand views: element (row, col) of op(X).
struct Operand {
  const float* data;
  std::int64_t ld;
  bool trans;
  float at(std::int64_t r, std::int64_t c) const { return trans ? data[c * ld + r] : data[r * ld + c]; }
};

void pack_a(const Operand& A, std::int64_t i0, std::int64_t p0, std::int64_t mc, std::int64_t kc,
            int mr, float alpha, float* out) {
  for (std::int64_t ir = 0; ir < mc; ir += mr) {
    const std::int64_t m = std::min<std::int64_t>(mr, mc - ir);
    float* dst = out + ir * kc;
    if (A.trans) {
      for (std::int64_t p = 0; p < kc; ++p) {
        const float* src = A.data + (p0 + p) * A.ld + i0 + ir;
        float* d = dst + p * mr;
        for (std::int64_t i = 0; i < m; ++i) d[i] = alpha * src[i];
        for (std::int64_t i = m; i < mr; ++i) d[i] = 0.0f;
      }
      continue;
    }
    for (std::int64_t i = 0; i < m; ++i) {
      const float* src = A.data + (i0 + ir + i) * A.ld + p0;
      for (std::int64_t p = 0; p < kc; ++p) dst[p * mr + i] = alpha * src[p];
    }
    for (std::int64_t i = m; i < mr; ++i) {
      for (std::int64_t p = 0; p < kc; ++p) dst[p * mr + i] = 0.0f;
    }
  }
}

void pack_b(const Operand& B, std::int64_t p0, std::int64_t j0, std::int64_t kc, std::int64_t nc,
            int nr, float* out) {
  for (std::int64_t jr = 0; jr < nc; jr += nr) {
    const std::int64_t n = std::min<std::int64_t>(nr, nc - jr);
    float* dst = out + jr * kc;
    if (!B.trans) {
      for (std::int64_t p = 0; p < kc; ++p) {
        const float* src = B.data + (p0 + p) * B.ld + j0 + jr;
        float* d = dst + p * nr;
        std::memcpy(d, src, static_cast<std::size_t>(n) * sizeof(float));
        for (std::int64_t j = n; j < nr; ++j) d[j] = 0.0f;
      }
      continue;
    }
    for (std::int64_t j = 0; j < n; ++j) {
      const float* src = B.data + (j0 + jr + j) * B.ld + p0;
      for (std::int64_t p = 0; p < kc; ++p) dst[p * nr + j] = src[p];
    }
    for (std::int64_t j = n; j < nr; ++j) {
      for (std::int64_t p = 0; p < kc; ++p) dst[p * nr + j] = 0.0f;
    }
  }
}

// A partial tile: compute it into a scratch tile, then merge the valid part into C.
void edge_tile(const GemmKernel& k, std::int64_t kc, const float* a, const float* b, float* c,
               std::int64_t ldc, float beta, std::int64_t m, std::int64_t n) {
  alignas(64) float tile[kMaxTile];
  k.fn(kc, a, b, tile, k.nr, 0.0f);
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    const float* t = tile + i * k.nr;
    for (std::int64_t j = 0; j < n; ++j) row[j] = beta == 0.0f ? t[j] : t[j] + beta * row[j];
  }
}

std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[2];  // grow-only, reused by later calls
  return buffers[which];
}

// One thread's rectangle: C[M,N] = alpha op(A) op(B) + beta C, A and B already offset.
void gemm_block(const GemmKernel& k, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                const Operand& A, const Operand& B, float beta, float* C, std::int64_t ldc) {
  const std::int64_t nc_max = std::min(k.nc, (N + k.nr - 1) / k.nr * k.nr);
  const std::int64_t mc_max = std::min(k.mc, (M + k.mr - 1) / k.mr * k.mr);
  const std::int64_t kc_max = std::min(k.kc, K);
  std::vector<float>& apack = scratch(0);
  std::vector<float>& bpack = scratch(1);
  if (apack.size() < static_cast<std::size_t>(mc_max * kc_max)) apack.resize(mc_max * kc_max);
  if (bpack.size() < static_cast<std::size_t>(nc_max * kc_max)) bpack.resize(nc_max * kc_max);
  for (std::int64_t jc = 0; jc < N; jc += k.nc) {
    const std::int64_t nc = std::min(k.nc, N - jc);
    for (std::int64_t pc = 0; pc < K; pc += k.kc) {
      const std::int64_t kc = std::min(k.kc, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;
      pack_b(B, pc, jc, kc, nc, k.nr, bpack.data());
      for (std::int64_t ic = 0; ic < M; ic += k.mc) {
        const std::int64_t mc = std::min(k.mc, M - ic);
        pack_a(A, ic, pc, mc, kc, k.mr, alpha, apack.data());
        for (std::int64_t jr = 0; jr < nc; jr += k.nr) {
          const std::int64_t n = std::min<std::int64_t>(k.nr, nc - jr);
          const float* bp = bpack.data() + jr * kc;
          for (std::int64_t ir = 0; ir < mc; ir += k.mr) {
            const std::int64_t m = std::min<std::int64_t>(k.mr, mc - ir);
            const float* ap = apack.data() + ir * kc;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (m == k.mr && n == k.nr) {
              k.fn(kc, ap, bp, c, ldc, beta_k);
            } else {
              edge_tile(k, kc, ap, bp, c, ldc, beta_k, m, n);
            }
          }
        }
      }
    }
  }
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct Grid {
  std::int64_t rows_per, cols_per, tm, tn;
};

// Split C into tm x tn rectangles for `tasks` tasks, balancing compute against re-packing.
Grid grid_for(std::int64_t M, std::int64_t N, int tasks, const GemmKernel& k) {
  Grid best{ceil_div(M, k.mr) * k.mr, ceil_div(N, k.nr) * k.nr, 1, 1};
  double best_cost = -1.0;
  for (int tm = 1; tm <= tasks; ++tm) {
    if (tasks % tm != 0) continue;
    const int tn = tasks / tm;
    const std::int64_t rows = ceil_div(ceil_div(M, tm), k.mr) * k.mr;
    const std::int64_t cols = ceil_div(ceil_div(N, tn), k.nr) * k.nr;
    const double cost = static_cast<double>(rows) * cols + 64.0 * (rows + cols);
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {rows, cols, ceil_div(M, rows), ceil_div(N, cols)};
    }
  }
  return best;
}

// Threads worth using, and a grid with a few tasks per thread when the rectangles stay
// large: the task queue then balances threads slowed down by other processes.
Grid choose_grid(std::int64_t M, std::int64_t N, std::int64_t K, int* threads,
                 const GemmKernel& k) {
  const std::int64_t work = M * N * std::max<std::int64_t>(K, 1);
  const int T = static_cast<int>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(*threads, work / kMinWorkPerThread)));
  *threads = T;
  if (T == 1) return grid_for(M, N, 1, k);
  for (int per_thread = ONNXEP_TASKS_PER_THREAD; per_thread >= 2; per_thread /= 2) {
    const Grid g = grid_for(M, N, T * per_thread, k);
    if (g.rows_per * g.cols_per >= kMinTaskArea && g.tm * g.tn >= T * per_thread) return g;
  }
  return grid_for(M, N, T, k);
}

void scale_c(std::int64_t M, std::int64_t N, float beta, float* C, std::int64_t ldc) {
  for (std::int64_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    for (std::int64_t j = 0; j < N; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  if ((M == 1 || N == 1) && sgemv(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                  threads)) {
    return;
  }
  const GemmKernel k = active_kernel();
  int T = resolve_threads(threads);
  const Grid g = choose_grid(M, N, K, &T, k);
  parallel_for(g.tm * g.tn, T, [&](std::int64_t t) {
    const std::int64_t i0 = (t / g.tn) * g.rows_per;
    const std::int64_t j0 = (t % g.tn) * g.cols_per;
    const std::int64_t m = std::min(g.rows_per, M - i0);
    const std::int64_t n = std::min(g.cols_per, N - j0);
    if (m <= 0 || n <= 0) return;
    const Operand a{trans_a ? A + i0 : A + i0 * lda, lda, trans_a};
    const Operand b{trans_b ? B + j0 * ldb : B + j0, ldb, trans_b};
    gemm_block(k, m, n, K, alpha, a, b, beta, C + i0 * ldc + j0, ldc);
  });
}

void sgemm_batched(std::int64_t batch, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N,
                   std::int64_t K, const float* A, std::int64_t lda, const std::int64_t* a_offsets,
                   const float* B, std::int64_t ldb, const std::int64_t* b_offsets, float* C,
                   std::int64_t ldc, int threads) {
  const int T = resolve_threads(threads);
  const std::int64_t work = M * N * std::max<std::int64_t>(K, 1);
  const std::int64_t c_step = M * ldc;
  if (batch >= T || work < kMinWorkPerThread) {  // one product per task, each single-threaded
    parallel_for(batch, T, [&](std::int64_t b) {
      sgemm(trans_a, trans_b, M, N, K, 1.0f, A + a_offsets[b], lda, B + b_offsets[b], ldb, 0.0f,
            C + b * c_step, ldc, 1);
    });
    return;
  }
  for (std::int64_t b = 0; b < batch; ++b) {
    sgemm(trans_a, trans_b, M, N, K, 1.0f, A + a_offsets[b], lda, B + b_offsets[b], ldb, 0.0f,
          C + b * c_step, ldc, T);
  }
}

std::string gemm_isa() { return active_kernel().name; }

bool set_gemm_isa(const std::string& isa) {
  __builtin_cpu_init();
  int code = -1;
  if (isa == "auto") code = 0;
  if (isa == "scalar") code = 1;
  if (isa == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) code = 2;
  if (isa == "avx512" && __builtin_cpu_supports("avx512f")) code = 3;
  if (code < 0) return false;
  forced_isa.store(code);
  return true;
}

}  // namespace onnxep
