// Convolution: im2col + GEMM per group (1x1 stride-1 convolutions skip im2col), and a
// direct loop for depthwise convolutions. The column buffer covers a band of output rows
// at a time so memory stays bounded; bias and Relu are applied in one pass at the end.
#include <algorithm>
#include <cstring>
#include <vector>

#include "onnxep/gemm.hpp"
#include "onnxep/nn.hpp"
#include "onnxep/parallel.hpp"

namespace onnxep {
namespace {

constexpr std::int64_t kColumnBudget = std::int64_t{1} << 21;  // floats in the column buffer
constexpr std::int64_t kSmallProduct = std::int64_t{1} << 22;  // multiply-adds per group

// The [first, last) output positions whose input index o*stride + offset is in [0, size).
void valid_range(std::int64_t offset, std::int64_t stride, std::int64_t size, std::int64_t out,
                 std::int64_t* first, std::int64_t* last) {
  std::int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  std::int64_t hi = size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride;
  *first = std::min(lo, out);
  *last = std::max(*first, std::min(hi, out));
}

// Columns of output rows [r0, r1) for channels [c0, c0 + cg): row (c, i, j) of the matrix
// holds the input under kernel tap (i, j) for each output position.
void im2col(const Conv2d& p, const float* x, std::int64_t cg, std::int64_t r0, std::int64_t r1,
            float* col, int threads) {
  const Window2d& k = p.win;
  const std::int64_t taps = k.kh * k.kw, width = (r1 - r0) * p.ow;
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(width, 1));
  parallel_range(cg * taps, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t row = b; row < e; ++row) {
      const std::int64_t c = row / taps, i = (row % taps) / k.kw, j = row % k.kw;
      const float* plane = x + c * p.h * p.w;
      float* dst = col + row * width;
      const std::int64_t off_w = j * k.dil_w - k.pad_l;
      std::int64_t f, l;
      valid_range(off_w, k.stride_w, p.w, p.ow, &f, &l);
      for (std::int64_t r = r0; r < r1; ++r, dst += p.ow) {
        const std::int64_t ih = r * k.stride_h - k.pad_t + i * k.dil_h;
        if (ih < 0 || ih >= p.h) {
          std::fill(dst, dst + p.ow, 0.0f);
          continue;
        }
        const float* src = plane + ih * p.w + off_w;
        std::fill(dst, dst + f, 0.0f);
        if (k.stride_w == 1) {
          std::memcpy(dst + f, src + f, static_cast<std::size_t>(l - f) * sizeof(float));
        } else {
          for (std::int64_t o = f; o < l; ++o) dst[o] = src[o * k.stride_w];
        }
        std::fill(dst + l, dst + p.ow, 0.0f);
      }
    }
  });
}

bool is_pointwise(const Window2d& k) {
  return k.kh == 1 && k.kw == 1 && k.stride_h == 1 && k.stride_w == 1 && k.pad_t == 0 &&
         k.pad_l == 0 && k.pad_b == 0 && k.pad_r == 0;
}

// One image and group: y_g = w_g . columns(x_g), band of output rows by band.
void conv_group(const Conv2d& p, const float* xg, const float* wg, float* yg, float* col,
                std::int64_t band, int threads) {
  const Window2d& k = p.win;
  const std::int64_t cg = p.c / p.group, mg = p.m / p.group, depth = cg * k.kh * k.kw;
  const std::int64_t plane = p.oh * p.ow;
  if (is_pointwise(k)) {
    sgemm(false, false, mg, plane, depth, 1.0f, wg, depth, xg, plane, 0.0f, yg, plane, threads);
    return;
  }
  for (std::int64_t r0 = 0; r0 < p.oh; r0 += band) {
    const std::int64_t r1 = std::min(p.oh, r0 + band), width = (r1 - r0) * p.ow;
    im2col(p, xg, cg, r0, r1, col, threads);
    sgemm(false, false, mg, width, depth, 1.0f, wg, depth, col, width, 0.0f, yg + r0 * p.ow,
          plane, threads);
  }
}

// Many small (image, group) products run one per thread; large ones use every thread each.
void gemm_conv(const Conv2d& p, const float* x, const float* w, float* y, int threads) {
  const Window2d& k = p.win;
  const std::int64_t cg = p.c / p.group, mg = p.m / p.group, depth = cg * k.kh * k.kw;
  const std::int64_t plane = p.oh * p.ow, tasks = p.n * p.group;
  const std::int64_t band = std::max<std::int64_t>(
      1, std::min(p.oh, kColumnBudget / std::max<std::int64_t>(depth * p.ow, 1)));
  const std::size_t col_size = is_pointwise(k) ? 0 : static_cast<std::size_t>(depth * band * p.ow);
  const int T = resolve_threads(threads);
  const bool per_task = T > 1 && tasks >= T && mg * plane * depth < kSmallProduct;
  auto run = [&](std::int64_t t, float* col, int inner_threads) {
    const std::int64_t n = t / p.group, g = t % p.group;
    conv_group(p, x + (n * p.c + g * cg) * p.h * p.w, w + g * mg * depth,
               y + (n * p.m + g * mg) * plane, col, band, inner_threads);
  };
  if (per_task) {
    parallel_for(tasks, T, [&](std::int64_t t) {
      thread_local std::vector<float> col;
      if (col.size() < col_size) col.resize(col_size);
      run(t, col.data(), 1);
    });
    return;
  }
  std::vector<float> col(col_size);
  for (std::int64_t t = 0; t < tasks; ++t) run(t, col.data(), threads);
}

// One output plane of a depthwise convolution (one input channel per group).
void depthwise_plane(const Conv2d& p, const float* x, const float* w, float* y) {
  const Window2d& k = p.win;
  std::fill(y, y + p.oh * p.ow, 0.0f);
  for (std::int64_t i = 0; i < k.kh; ++i) {
    for (std::int64_t j = 0; j < k.kw; ++j) {
      const float tap = w[i * k.kw + j];
      const std::int64_t off_w = j * k.dil_w - k.pad_l;
      std::int64_t f, l;
      valid_range(off_w, k.stride_w, p.w, p.ow, &f, &l);
      for (std::int64_t r = 0; r < p.oh; ++r) {
        const std::int64_t ih = r * k.stride_h - k.pad_t + i * k.dil_h;
        if (ih < 0 || ih >= p.h) continue;
        const float* src = x + ih * p.w + off_w;
        float* dst = y + r * p.ow;
        if (k.stride_w == 1) {
          for (std::int64_t o = f; o < l; ++o) dst[o] += tap * src[o];
        } else {
          for (std::int64_t o = f; o < l; ++o) dst[o] += tap * src[o * k.stride_w];
        }
      }
    }
  }
}

void depthwise_conv(const Conv2d& p, const float* x, const float* w, float* y, int threads) {
  const std::int64_t mg = p.m / p.group, taps = p.win.kh * p.win.kw, plane = p.oh * p.ow;
  const std::int64_t grain =
      std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(plane * taps, 1));
  parallel_range(p.n * p.m, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) {
      const std::int64_t n = t / p.m, oc = t % p.m, ic = oc / mg;
      depthwise_plane(p, x + (n * p.c + ic) * p.h * p.w, w + oc * taps, y + t * plane);
    }
  });
}

void epilogue(const Conv2d& p, const float* bias, float* y, int threads) {
  if (bias == nullptr && !p.relu) return;
  const std::int64_t plane = p.oh * p.ow;
  const std::int64_t grain = std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(plane, 1));
  parallel_range(p.n * p.m, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) {
      float* dst = y + t * plane;
      const float add = bias != nullptr ? bias[t % p.m] : 0.0f;
      if (p.relu) {
        for (std::int64_t i = 0; i < plane; ++i) dst[i] = std::max(dst[i] + add, 0.0f);
      } else {
        for (std::int64_t i = 0; i < plane; ++i) dst[i] += add;
      }
    }
  });
}

}  // namespace

void conv2d(const Conv2d& p, const float* x, const float* w, const float* bias, float* y,
            int threads) {
  if (p.n * p.m * p.oh * p.ow == 0) return;
  if (p.c / p.group == 1) {
    depthwise_conv(p, x, w, y, threads);
  } else {
    gemm_conv(p, x, w, y, threads);
  }
  epilogue(p, bias, y, threads);
}

}  // namespace onnxep
