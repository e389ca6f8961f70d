// Branch-free float math that compilers vectorize (Cephes-style polynomials, |error| of a
// few ulp), for loops compiled with target_clones. Special values follow libm: NaN stays
// NaN, exp overflows to inf and underflows to 0, tanh saturates at +-1.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace onnxep {
namespace vmath {

inline float from_bits(std::int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// 2^n for n in [-126, 127].
inline float pow2i(std::int32_t n) { return from_bits((n + 127) << 23); }

inline float exp(float x) {
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 88.8f ? 88.8f : xc;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float fn = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const std::int32_t n = static_cast<std::int32_t>(fn);
  const std::int32_t half = n >> 1;  // two factors keep 2^n normal for n in [-150, 128]
  const float scaled = y * pow2i(half) * pow2i(n - half);
  return x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : scaled;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + vmath::exp(-x)); }

inline float tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = vmath::exp(2.0f * (ax > 9.0f ? 9.0f : ax));
  const float big = 1.0f - 2.0f / (z + 1.0f);
  const float x2 = x * x;
  float p = -5.70498872745e-3f;
  p = p * x2 + 2.06390887954e-2f;
  p = p * x2 - 5.37397155531e-2f;
  p = p * x2 + 1.33314422036e-1f;
  p = p * x2 - 3.33332819422e-1f;
  const float small = p * x2 * x + x;
  return ax >= 0.625f ? (x < 0.0f ? -big : big) : small;
}

}  // namespace vmath
}  // namespace onnxep
