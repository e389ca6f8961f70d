// Unary maps and broadcasting binary ops. The inner loops are templates compiled for
// AVX-512, AVX2 and baseline x86-64 (target_clones), chosen when the module loads.
#include "onnxep/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "onnxep/parallel.hpp"
#include "onnxep/vmath.hpp"

#define ONNXEP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace onnxep {
namespace {

constexpr std::int64_t kGrain = 1 << 15;  // elements per task: below this, one thread

// --- unary ----------------------------------------------------------------------------

struct Relu { float operator()(float x) const { return x < 0.0f ? 0.0f : x; } };
struct Sigmoid { float operator()(float x) const { return vmath::sigmoid(x); } };
struct Tanh { float operator()(float x) const { return vmath::tanh(x); } };
struct Exp { float operator()(float x) const { return vmath::exp(x); } };
struct Log { float operator()(float x) const { return std::log(x); } };
struct Sqrt { float operator()(float x) const { return std::sqrt(x); } };
struct Abs { float operator()(float x) const { return std::fabs(x); } };
struct Neg { float operator()(float x) const { return -x; } };
struct Erf { float operator()(float x) const { return std::erf(x); } };
struct LeakyRelu {
  float alpha;
  float operator()(float x) const { return x < 0.0f ? alpha * x : x; }
};
struct Clip {
  float lo, hi;
  float operator()(float x) const {
    const float y = x < lo ? lo : x;
    return y > hi ? hi : y;
  }
};

template <class F>
ONNXEP_CLONES void map(const float* x, float* y, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class F>
void run_unary(const float* x, float* y, std::int64_t n, F f, int threads) {
  parallel_range(n, kGrain, threads,
                 [&](std::int64_t b, std::int64_t e) { map(x + b, y + b, e - b, f); });
}

// --- binary ---------------------------------------------------------------------------

struct Add { float operator()(float a, float b) const { return a + b; } };
struct Sub { float operator()(float a, float b) const { return a - b; } };
struct Mul { float operator()(float a, float b) const { return a * b; } };
struct Div { float operator()(float a, float b) const { return a / b; } };
struct Max {  // numpy.maximum: NaN wins
  float operator()(float a, float b) const {
    const float m = a > b ? a : b;
    return b != b ? b : (a != a ? a : m);
  }
};
struct Min {
  float operator()(float a, float b) const {
    const float m = a < b ? a : b;
    return b != b ? b : (a != a ? a : m);
  }
};
struct Pow { float operator()(float a, float b) const { return std::pow(a, b); } };
struct AddRelu {
  float operator()(float a, float b) const {
    const float s = a + b;
    return s < 0.0f ? 0.0f : s;
  }
};

// One contiguous row of the output: each input steps 1 (a vector) or 0 (a broadcast scalar).
template <class F>
ONNXEP_CLONES void row_vv(const float* a, const float* b, float* y, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
template <class F>
ONNXEP_CLONES void row_sv(float a, const float* b, float* y, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}
template <class F>
ONNXEP_CLONES void row_vs(const float* a, float b, float* y, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}

template <class F>
void row(const float* a, std::int64_t sa, const float* b, std::int64_t sb, float* y,
         std::int64_t n, F f) {
  if (sa == 1 && sb == 1) return row_vv(a, b, y, n, f);
  if (sa == 0 && sb == 1) return row_sv(*a, b, y, n, f);
  if (sa == 1 && sb == 0) return row_vs(a, *b, y, n, f);
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(a[i * sa], b[i * sb]);
}

// Dims merged where both inputs stay contiguous across them, size-1 dims dropped.
struct Layout {
  std::vector<std::int64_t> shape, sa, sb;
};

Layout coalesce(const std::int64_t* shape, const std::int64_t* sa, const std::int64_t* sb,
                int rank) {
  Layout l;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    if (!l.shape.empty() && l.sa.back() == sa[d] * shape[d] && l.sb.back() == sb[d] * shape[d]) {
      l.shape.back() *= shape[d];
      l.sa.back() = sa[d];
      l.sb.back() = sb[d];
      continue;
    }
    l.shape.push_back(shape[d]);
    l.sa.push_back(sa[d]);
    l.sb.push_back(sb[d]);
  }
  if (l.shape.empty()) l = {{1}, {0}, {0}};
  return l;
}

template <class F>
void run_binary(const float* a, const std::int64_t* sa, const float* b, const std::int64_t* sb,
                float* y, const std::int64_t* shape, int rank, F f, int threads) {
  const Layout l = coalesce(shape, sa, sb, rank);
  const int r = static_cast<int>(l.shape.size());
  const std::int64_t inner = l.shape[r - 1];
  std::int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= l.shape[d];
  // Tasks are (row, chunk of the row) pairs so a single long row still splits.
  const int T = resolve_threads(threads);
  const std::int64_t chunks = rows >= T ? 1 : std::max<std::int64_t>(1, std::min<std::int64_t>(
                                                                           T, inner / kGrain));
  const std::int64_t step = (inner + chunks - 1) / chunks;
  const std::int64_t per_task = std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(step, 1));
  parallel_range(rows * chunks, per_task, threads, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t row_index = t / chunks, c = t % chunks;
      std::int64_t rest = row_index, oa = 0, ob = 0;
      for (int d = r - 2; d >= 0; --d) {
        const std::int64_t idx = rest % l.shape[d];
        rest /= l.shape[d];
        oa += idx * l.sa[d];
        ob += idx * l.sb[d];
      }
      const std::int64_t begin = c * step, end = std::min(inner, begin + step);
      if (begin >= end) continue;
      const std::int64_t sa_in = l.sa[r - 1], sb_in = l.sb[r - 1];
      row(a + oa + begin * sa_in, sa_in, b + ob + begin * sb_in, sb_in,
          y + row_index * inner + begin, end - begin, f);
    }
  });
}

}  // namespace

void unary(UnaryOp op, const float* x, float* y, std::int64_t n, float alpha, float beta,
           int threads) {
  switch (op) {
    case UnaryOp::Relu: return run_unary(x, y, n, Relu{}, threads);
    case UnaryOp::Sigmoid: return run_unary(x, y, n, Sigmoid{}, threads);
    case UnaryOp::Tanh: return run_unary(x, y, n, Tanh{}, threads);
    case UnaryOp::Exp: return run_unary(x, y, n, Exp{}, threads);
    case UnaryOp::Log: return run_unary(x, y, n, Log{}, threads);
    case UnaryOp::Sqrt: return run_unary(x, y, n, Sqrt{}, threads);
    case UnaryOp::Abs: return run_unary(x, y, n, Abs{}, threads);
    case UnaryOp::Neg: return run_unary(x, y, n, Neg{}, threads);
    case UnaryOp::Erf: return run_unary(x, y, n, Erf{}, threads);
    case UnaryOp::LeakyRelu: return run_unary(x, y, n, LeakyRelu{alpha}, threads);
    case UnaryOp::Clip: return run_unary(x, y, n, Clip{alpha, beta}, threads);
  }
}

void binary(BinaryOp op, const float* a, const std::int64_t* a_strides, const float* b,
            const std::int64_t* b_strides, float* y, const std::int64_t* shape, int rank,
            int threads) {
  const auto go = [&](auto f) { run_binary(a, a_strides, b, b_strides, y, shape, rank, f, threads); };
  switch (op) {
    case BinaryOp::Add: return go(Add{});
    case BinaryOp::Sub: return go(Sub{});
    case BinaryOp::Mul: return go(Mul{});
    case BinaryOp::Div: return go(Div{});
    case BinaryOp::Max: return go(Max{});
    case BinaryOp::Min: return go(Min{});
    case BinaryOp::Pow: return go(Pow{});
    case BinaryOp::AddRelu: return go(AddRelu{});
  }
}

}  // namespace onnxep
