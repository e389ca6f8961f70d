// Elementwise float32 kernels: unary maps and binary ops with numpy broadcasting.
#pragma once

#include <cstdint>

namespace onnxep {

enum class UnaryOp { Relu, Sigmoid, Tanh, Exp, Log, Sqrt, Abs, Neg, Erf, LeakyRelu, Clip };

// y[i] = op(x[i]) for i < n. alpha: LeakyRelu's slope, or Clip's lower bound; beta: Clip's
// upper bound. x and y may be the same buffer.
void unary(UnaryOp op, const float* x, float* y, std::int64_t n, float alpha, float beta,
           int threads);

// AddRelu is max(a + b, 0): an Add followed by a Relu, fused.
enum class BinaryOp { Add, Sub, Mul, Div, Max, Min, Pow, AddRelu };

// y = a op b over an output of `rank` dims `shape`; a_strides / b_strides give each input's
// element stride per output dim (0 where the input is broadcast). y is C-contiguous.
void binary(BinaryOp op, const float* a, const std::int64_t* a_strides, const float* b,
            const std::int64_t* b_strides, float* y, const std::int64_t* shape, int rank,
            int threads);

}  // namespace onnxep
