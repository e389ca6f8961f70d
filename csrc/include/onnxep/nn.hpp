// 2-D convolution and pooling on NCHW float32 tensors (1-D runs as 2-D with H = 1).
#pragma once

#include <cstdint>

namespace onnxep {

struct Window2d {
  std::int64_t kh, kw;                        // kernel
  std::int64_t pad_t, pad_l, pad_b, pad_r;    // explicit padding
  std::int64_t stride_h, stride_w;
  std::int64_t dil_h, dil_w;
};

struct Conv2d {
  std::int64_t n, c, h, w;  // input
  std::int64_t m;           // output channels
  std::int64_t group;
  std::int64_t oh, ow;      // output spatial size
  Window2d win;
  bool relu;                // fused max(y, 0) after the bias
};

// Output size of one spatial dim; ceil_mode as in ONNX pools (the last window must start
// inside the input or its leading padding). May be <= 0 for impossible geometries.
std::int64_t pooled_size(std::int64_t in, std::int64_t k, std::int64_t pad_begin,
                         std::int64_t pad_end, std::int64_t stride, std::int64_t dilation,
                         bool ceil_mode);

// y (n, m, oh, ow) = conv(x (n, c, h, w), w (m, c/group, kh, kw)) + bias (m, or null).
void conv2d(const Conv2d& p, const float* x, const float* w, const float* bias, float* y,
            int threads);

struct Pool2d {
  std::int64_t n, c, h, w, oh, ow;
  Window2d win;
};

// Max over each window's in-bounds positions (padding never wins).
void max_pool2d(const Pool2d& p, const float* x, float* y, int threads);

// Mean over each window; count_include_pad counts positions inside the explicit padding
// (never those added by ceil_mode).
void avg_pool2d(const Pool2d& p, bool count_include_pad, const float* x, float* y, int threads);

}  // namespace onnxep
