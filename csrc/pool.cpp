// MaxPool and AveragePool over NCHW planes, one plane per task.
#include <algorithm>
#include <limits>

#include "onnxep/nn.hpp"
#include "onnxep/parallel.hpp"

namespace onnxep {
namespace {

struct Span {
  std::int64_t first, last;  // in-bounds taps [first, last)
  std::int64_t counted;      // taps inside input + explicit padding
};

// Which taps of the window starting at `start` fall inside [0, size) and inside the
// explicitly padded extent [-pad_begin, size + pad_end).
Span taps(std::int64_t start, std::int64_t k, std::int64_t dil, std::int64_t size,
          std::int64_t pad_end) {
  Span s{0, 0, 0};
  std::int64_t first = k, last = 0;
  for (std::int64_t t = 0; t < k; ++t) {
    const std::int64_t pos = start + t * dil;
    if (pos < size + pad_end) ++s.counted;
    if (pos >= 0 && pos < size) {
      first = std::min(first, t);
      last = t + 1;
    }
  }
  s.first = std::min(first, last);
  s.last = last;
  return s;
}

template <class Body>
void for_planes(const Pool2d& p, int threads, Body body) {
  const std::int64_t plane = p.oh * p.ow * p.win.kh * p.win.kw;
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(plane, 1));
  parallel_range(p.n * p.c, grain, threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) body(t);
  });
}

}  // namespace

std::int64_t pooled_size(std::int64_t in, std::int64_t k, std::int64_t pad_begin,
                         std::int64_t pad_end, std::int64_t stride, std::int64_t dilation,
                         bool ceil_mode) {
  const std::int64_t span = in + pad_begin + pad_end - dilation * (k - 1) - 1;
  if (span < 0) return 0;
  if (!ceil_mode) return span / stride + 1;
  std::int64_t out = (span + stride - 1) / stride + 1;
  if ((out - 1) * stride >= in + pad_begin) --out;
  return out;
}

void max_pool2d(const Pool2d& p, const float* x, float* y, int threads) {
  const Window2d& k = p.win;
  for_planes(p, threads, [&](std::int64_t t) {
    const float* src = x + t * p.h * p.w;
    float* dst = y + t * p.oh * p.ow;
    for (std::int64_t r = 0; r < p.oh; ++r) {
      const std::int64_t h0 = r * k.stride_h - k.pad_t;
      const Span sh = taps(h0, k.kh, k.dil_h, p.h, k.pad_b);
      for (std::int64_t c = 0; c < p.ow; ++c) {
        const std::int64_t w0 = c * k.stride_w - k.pad_l;
        const Span sw = taps(w0, k.kw, k.dil_w, p.w, k.pad_r);
        float m = -std::numeric_limits<float>::infinity();
        for (std::int64_t i = sh.first; i < sh.last; ++i) {
          const float* row = src + (h0 + i * k.dil_h) * p.w + w0;
          for (std::int64_t j = sw.first; j < sw.last; ++j) {
            const float v = row[j * k.dil_w];
            m = v > m ? v : m;
          }
        }
        dst[r * p.ow + c] = m;
      }
    }
  });
}

void avg_pool2d(const Pool2d& p, bool count_include_pad, const float* x, float* y, int threads) {
  const Window2d& k = p.win;
  for_planes(p, threads, [&](std::int64_t t) {
    const float* src = x + t * p.h * p.w;
    float* dst = y + t * p.oh * p.ow;
    for (std::int64_t r = 0; r < p.oh; ++r) {
      const std::int64_t h0 = r * k.stride_h - k.pad_t;
      const Span sh = taps(h0, k.kh, k.dil_h, p.h, k.pad_b);
      for (std::int64_t c = 0; c < p.ow; ++c) {
        const std::int64_t w0 = c * k.stride_w - k.pad_l;
        const Span sw = taps(w0, k.kw, k.dil_w, p.w, k.pad_r);
        float sum = 0.0f;
        for (std::int64_t i = sh.first; i < sh.last; ++i) {
          const float* row = src + (h0 + i * k.dil_h) * p.w + w0;
          for (std::int64_t j = sw.first; j < sw.last; ++j) sum += row[j * k.dil_w];
        }
        const std::int64_t count = count_include_pad
                                       ? sh.counted * sw.counted
                                       : (sh.last - sh.first) * (sw.last - sw.first);
        dst[r * p.ow + c] = sum / static_cast<float>(count);
      }
    }
  });
}

}  // namespace onnxep
