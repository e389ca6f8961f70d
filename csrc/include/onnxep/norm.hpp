// Softmax and LayerNormalization over float32 tensors viewed as (outer, axis, inner).
#pragma once

#include <cstdint>

namespace onnxep {

// Softmax over the middle dim of x viewed as (outer, n, inner): y = exp(x - max) / sum.
void softmax(const float* x, float* y, std::int64_t outer, std::int64_t n, std::int64_t inner,
             int threads);

// LayerNormalization over each of `rows` rows of `cols` values: y = (x - mean) * inv_std *
// scale + bias, inv_std = 1 / sqrt(var + epsilon). scale and bias hold `cols` values; bias
// may be null. mean and inv_std receive one value per row.
void layer_norm(const float* x, const float* scale, const float* bias, float* y, float* mean,
                float* inv_std, std::int64_t rows, std::int64_t cols, float epsilon, int threads);

// Per-channel affine map of x viewed as (n, c, inner): y = x * scale[ch] + shift[ch], then
// max(y, 0) when relu. BatchNormalization in inference mode, its parameters folded.
void channel_affine(const float* x, const float* scale, const float* shift, float* y,
                    std::int64_t n, std::int64_t c, std::int64_t inner, bool relu, int threads);

}  // namespace onnxep
