// Softmax and LayerNormalization. Reductions keep 16 partial results so the loops vectorize
// without reassociating floating-point math behind the compiler's back.
#include "onnxep/norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "onnxep/parallel.hpp"
#include "onnxep/vmath.hpp"

#define ONNXEP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace onnxep {
namespace {

constexpr int kLanes = 16;
constexpr std::int64_t kGrain = 1 << 14;  // elements per task

// NaN in a row makes every output of the row NaN through the subtraction, as numpy does.
ONNXEP_CLONES float row_max(const float* x, std::int64_t n) {
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = -std::numeric_limits<float>::infinity();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
  }
  float m = -std::numeric_limits<float>::infinity();
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < kLanes; ++l) m = lane[l] > m ? lane[l] : m;
  return m;
}

// y = exp(x - m); returns the sum of y.
ONNXEP_CLONES float exp_row(const float* x, float* y, std::int64_t n, float m) {
  float lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      y[i + l] = vmath::exp(x[i + l] - m);
      lane[l] += y[i + l];
    }
  }
  float s = 0.0f;
  for (; i < n; ++i) {
    y[i] = vmath::exp(x[i] - m);
    s += y[i];
  }
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

ONNXEP_CLONES void scale_row(float* y, std::int64_t n, float f) {
  for (std::int64_t i = 0; i < n; ++i) y[i] *= f;
}

// Softmax of one (n, inner) slab with inner > 1: reductions run across rows, vectorized
// along the contiguous inner dim.
ONNXEP_CLONES void softmax_slab(const float* x, float* y, std::int64_t n, std::int64_t inner,
                                float* m, float* s) {
  for (std::int64_t j = 0; j < inner; ++j) m[j] = -std::numeric_limits<float>::infinity();
  for (std::int64_t k = 0; k < n; ++k) {
    const float* row = x + k * inner;
    for (std::int64_t j = 0; j < inner; ++j) m[j] = row[j] > m[j] ? row[j] : m[j];
  }
  for (std::int64_t j = 0; j < inner; ++j) s[j] = 0.0f;
  for (std::int64_t k = 0; k < n; ++k) {
    const float* row = x + k * inner;
    float* out = y + k * inner;
    for (std::int64_t j = 0; j < inner; ++j) {
      out[j] = vmath::exp(row[j] - m[j]);
      s[j] += out[j];
    }
  }
  for (std::int64_t j = 0; j < inner; ++j) s[j] = 1.0f / s[j];
  for (std::int64_t k = 0; k < n; ++k) {
    float* out = y + k * inner;
    for (std::int64_t j = 0; j < inner; ++j) out[j] *= s[j];
  }
}

// Mean and variance (two passes, double accumulation across 16 float lanes).
ONNXEP_CLONES void moments(const float* x, std::int64_t n, float* mean_out, float* var_out) {
  float lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += x[i + l];
  }
  double sum = 0.0;
  for (; i < n; ++i) sum += x[i];
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  float sq[kLanes] = {};
  for (i = 0; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float d = x[i + l] - mean;
      sq[l] += d * d;
    }
  }
  double ss = 0.0;
  for (; i < n; ++i) ss += static_cast<double>(x[i] - mean) * (x[i] - mean);
  for (int l = 0; l < kLanes; ++l) ss += sq[l];
  *mean_out = mean;
  *var_out = static_cast<float>(ss / static_cast<double>(n));
}

ONNXEP_CLONES void normalize_row(const float* x, const float* scale, const float* bias, float* y,
                                 std::int64_t n, float mean, float inv_std) {
  if (bias == nullptr) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv_std * scale[i];
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv_std * scale[i] + bias[i];
}

ONNXEP_CLONES void affine_row(const float* x, float a, float b, float* y, std::int64_t n,
                              bool relu) {
  if (relu) {
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = x[i] * a + b;
      y[i] = v < 0.0f ? 0.0f : v;
    }
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * a + b;
}

}  // namespace

void channel_affine(const float* x, const float* scale, const float* shift, float* y,
                    std::int64_t n, std::int64_t c, std::int64_t inner, bool relu, int threads) {
  const std::int64_t grain = std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(inner, 1));
  parallel_range(n * c, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) {
      const std::int64_t ch = t % c;
      affine_row(x + t * inner, scale[ch], shift[ch], y + t * inner, inner, relu);
    }
  });
}

void softmax(const float* x, float* y, std::int64_t outer, std::int64_t n, std::int64_t inner,
             int threads) {
  if (outer * n * inner == 0) return;
  const std::int64_t slab = n * inner;
  const std::int64_t grain = std::max<std::int64_t>(1, kGrain / slab);
  if (inner == 1) {
    parallel_range(outer, grain, threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t o = b; o < e; ++o) {
        const float* row = x + o * n;
        float* out = y + o * n;
        const float s = exp_row(row, out, n, row_max(row, n));
        scale_row(out, n, 1.0f / s);
      }
    });
    return;
  }
  parallel_range(outer, grain, threads, [&](std::int64_t b, std::int64_t e) {
    std::vector<float> work(2 * static_cast<std::size_t>(inner));
    for (std::int64_t o = b; o < e; ++o) {
      softmax_slab(x + o * slab, y + o * slab, n, inner, work.data(), work.data() + inner);
    }
  });
}

void layer_norm(const float* x, const float* scale, const float* bias, float* y, float* mean,
                float* inv_std, std::int64_t rows, std::int64_t cols, float epsilon, int threads) {
  if (rows == 0) return;
  if (cols == 0) {  // nothing to normalize: mean and variance of an empty row are NaN
    for (std::int64_t r = 0; r < rows; ++r) mean[r] = inv_std[r] = std::nanf("");
    return;
  }
  const std::int64_t grain = std::max<std::int64_t>(1, kGrain / cols);
  parallel_range(rows, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      float m, var;
      moments(x + r * cols, cols, &m, &var);
      const float is = 1.0f / std::sqrt(var + epsilon);
      normalize_row(x + r * cols, scale, bias, y + r * cols, cols, m, is);
      mean[r] = m;
      inv_std[r] = is;
    }
  });
}

}  // namespace onnxep
