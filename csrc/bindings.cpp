// Python bindings of the onnxep C++ kernels: the only translation unit that sees pybind11.
//
// Every function checks dtypes, ranks and shapes before any raw pointer is touched and
// raises TypeError / ValueError with the offending argument's name. Inputs must be float32;
// a non-contiguous (or misaligned) one is copied once into a C-contiguous array. Outputs are
// fresh C-contiguous arrays. The GIL is released while a kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "onnxep/elementwise.hpp"
#include "onnxep/gemm.hpp"
#include "onnxep/nn.hpp"
#include "onnxep/norm.hpp"
#include "onnxep/parallel.hpp"

namespace py = pybind11;
using F32 = py::array_t<float, py::array::c_style>;
using Shape = std::vector<std::int64_t>;

namespace {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// A C-contiguous, aligned float32 view of `obj` (an ndarray or a numpy scalar), copying only
// when its layout requires it.
F32 as_f32(const py::handle& obj, const char* name) {
  const bool is_array = py::isinstance<py::array>(obj);
  if (!is_array && !py::isinstance(obj, py::module_::import("numpy").attr("generic"))) {
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const py::array arr = is_array ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!arr.dtype().equal(py::dtype::of<float>())) {
    throw py::type_error(std::string(name) + " must be float32, got " +
                         std::string(py::str(arr.dtype())));
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(arr.data()) % alignof(float) == 0;
  if ((arr.flags() & py::array::c_style) && aligned) return py::reinterpret_borrow<F32>(arr);
  return py::reinterpret_steal<F32>(arr.attr("copy")("C").release());
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// The product of s[from:to].
std::int64_t product(const Shape& s, std::size_t from = 0, std::size_t to = SIZE_MAX) {
  to = std::min(to, s.size());
  std::int64_t n = 1;
  for (auto it = s.begin() + static_cast<std::ptrdiff_t>(std::min(from, to));
       it != s.begin() + static_cast<std::ptrdiff_t>(to); ++it) {
    n *= *it;
  }
  return n;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error(message);
}

// --- Gemm and MatMul ------------------------------------------------------------------

F32 gemm(const py::handle& a_obj, const py::handle& b_obj, const py::object& c_obj, float alpha,
         float beta, bool trans_a, bool trans_b, int threads) {
  const F32 a = as_f32(a_obj, "A");
  const F32 b = as_f32(b_obj, "B");
  require(a.ndim() == 2, "Gemm: A must be 2-D, got shape " + shape_str(shape_of(a)));
  require(b.ndim() == 2, "Gemm: B must be 2-D, got shape " + shape_str(shape_of(b)));
  const std::int64_t M = trans_a ? a.shape(1) : a.shape(0);
  const std::int64_t K = trans_a ? a.shape(0) : a.shape(1);
  const std::int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
  const std::int64_t N = trans_b ? b.shape(0) : b.shape(1);
  require(K == Kb, "Gemm: inner dimensions differ: op(A) is " + shape_str({M, K}) +
                       ", op(B) is " + shape_str({Kb, N}));
  F32 y({M, N});
  float* out = y.mutable_data();
  float beta_eff = 0.0f;
  if (!c_obj.is_none() && beta != 0.0f) {
    const F32 c = as_f32(c_obj, "C");
    const Shape cs = shape_of(c);
    require(c.ndim() <= 2, "Gemm: C must have rank <= 2, got " + shape_str(cs));
    const std::int64_t cm = c.ndim() == 2 ? cs[0] : 1;
    const std::int64_t cn = c.ndim() >= 1 ? cs[c.ndim() - 1] : 1;
    require((cm == 1 || cm == M) && (cn == 1 || cn == N),
            "Gemm: C of shape " + shape_str(cs) + " does not broadcast to " + shape_str({M, N}));
    const float* cp = c.data();
    py::gil_scoped_release no_gil;
    for (std::int64_t i = 0; i < M; ++i) {
      const float* row = cp + (cm == 1 ? 0 : i * cn);
      for (std::int64_t j = 0; j < N; ++j) out[i * N + j] = row[cn == 1 ? 0 : j];
    }
    beta_eff = beta;
  }
  if (M * N == 0) return y;
  const float* ap = a.data();
  const float* bp = b.data();
  const std::int64_t lda = a.shape(1), ldb = b.shape(1);
  py::gil_scoped_release no_gil;
  onnxep::sgemm(trans_a, trans_b, M, N, K, alpha, ap, lda, bp, ldb, beta_eff, out, N, threads);
  return y;
}

// numpy's broadcast of two shapes (aligned on the right), or ValueError naming `what`.
Shape broadcast_shape(const Shape& as, const Shape& bs, const std::string& what) {
  Shape out(std::max(as.size(), bs.size()), 1);
  for (std::size_t k = 0; k < out.size(); ++k) {
    const std::int64_t da = k < as.size() ? as[as.size() - 1 - k] : 1;
    const std::int64_t db = k < bs.size() ? bs[bs.size() - 1 - k] : 1;
    require(da == db || da == 1 || db == 1, what);
    out[out.size() - 1 - k] = da == 1 ? db : da;
  }
  return out;
}

// Element offsets of each matrix of a broadcast batch: `dims` are one operand's batch dims
// (right-aligned to `batch`), each matrix `size` elements long.
std::vector<std::int64_t> batch_offsets(const Shape& batch, Shape dims, std::int64_t size) {
  dims.insert(dims.begin(), batch.size() - dims.size(), 1);
  const std::int64_t count = product(batch);
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(count));
  for (std::int64_t flat = 0; flat < count; ++flat) {
    std::int64_t rest = flat, index = 0, stride = 1;
    for (std::size_t d = batch.size(); d-- > 0;) {
      index += (dims[d] == 1 ? 0 : rest % batch[d]) * stride;
      rest /= batch[d];
      stride *= dims[d];
    }
    offsets[flat] = index * size;
  }
  return offsets;
}

// numpy.matmul semantics: 1-D operands promoted and the added dims dropped; batch dims
// broadcast against each other.
F32 matmul(const py::handle& a_obj, const py::handle& b_obj, int threads) {
  const F32 a = as_f32(a_obj, "A");
  const F32 b = as_f32(b_obj, "B");
  Shape as = shape_of(a), bs = shape_of(b);
  const std::string operands = shape_str(as) + " @ " + shape_str(bs);
  require(!as.empty() && !bs.empty(), "MatMul: operands must have rank >= 1, got " + operands);
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const std::int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  require(K == bs[bs.size() - 2], "MatMul: inner dimensions differ: " + operands);
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch =
      broadcast_shape(a_batch, b_batch, "MatMul: batch dimensions do not broadcast: " + operands);
  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(M);
  if (!b_vec) out_shape.push_back(N);
  F32 y(out_shape);
  const std::int64_t count = product(batch);
  if (count * M * N == 0) return y;
  const float* ap = a.data();
  const float* bp = b.data();
  float* yp = y.mutable_data();
  if (product(b_batch) == 1 && product(a_batch) == count) {  // one (count*M) x K x N product
    py::gil_scoped_release no_gil;
    onnxep::sgemm(false, false, count * M, N, K, 1.0f, ap, K, bp, N, 0.0f, yp, N, threads);
    return y;
  }
  const auto a_off = batch_offsets(batch, a_batch, M * K);
  const auto b_off = batch_offsets(batch, b_batch, K * N);
  py::gil_scoped_release no_gil;
  onnxep::sgemm_batched(count, false, false, M, N, K, ap, K, a_off.data(), bp, N, b_off.data(),
                        yp, N, threads);
  return y;
}

// --- elementwise ----------------------------------------------------------------------

F32 unary(onnxep::UnaryOp op, const py::handle& x_obj, float alpha, float beta, int threads) {
  const F32 x = as_f32(x_obj, "X");
  F32 y(shape_of(x));
  const float* xp = x.data();
  float* yp = y.mutable_data();
  const std::int64_t n = x.size();
  py::gil_scoped_release no_gil;
  onnxep::unary(op, xp, yp, n, alpha, beta, threads);
  return y;
}

// Element strides of a C-contiguous array broadcast to `out` (0 on broadcast dims).
Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape strides(out.size(), 0);
  std::int64_t step = 1;
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::size_t d_in = in.size() - 1 - k, d_out = out.size() - 1 - k;
    strides[d_out] = in[d_in] == 1 ? 0 : step;
    step *= in[d_in];
  }
  return strides;
}

F32 binary(onnxep::BinaryOp op, const py::handle& a_obj, const py::handle& b_obj, int threads) {
  const F32 a = as_f32(a_obj, "A");
  const F32 b = as_f32(b_obj, "B");
  const Shape as = shape_of(a), bs = shape_of(b);
  const Shape out = broadcast_shape(
      as, bs, "operands could not be broadcast together: " + shape_str(as) + " and " + shape_str(bs));
  F32 y(out);
  if (y.size() == 0) return y;
  const Shape sa = broadcast_strides(as, out), sb = broadcast_strides(bs, out);
  const float* ap = a.data();
  const float* bp = b.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release no_gil;
  onnxep::binary(op, ap, sa.data(), bp, sb.data(), yp, out.data(), static_cast<int>(out.size()),
                 threads);
  return y;
}

// --- Softmax and LayerNormalization ----------------------------------------------------

std::size_t normalize_axis(std::int64_t axis, std::size_t rank, const char* op) {
  const auto r = static_cast<std::int64_t>(rank);
  require(axis >= -r && axis < r, std::string(op) + ": axis " + std::to_string(axis) +
                                      " is out of range for rank " + std::to_string(r));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

F32 softmax(const py::handle& x_obj, std::int64_t axis, int threads) {
  const F32 x = as_f32(x_obj, "input");
  const Shape s = shape_of(x);
  require(!s.empty(), "Softmax: input must have rank >= 1");
  const std::size_t ax = normalize_axis(axis, s.size(), "Softmax");
  F32 y(s);
  const std::int64_t outer = product(s, 0, ax), n = s[ax], inner = product(s, ax + 1);
  const float* xp = x.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release no_gil;
  onnxep::softmax(xp, yp, outer, n, inner, threads);
  return y;
}

py::tuple layer_norm(const py::handle& x_obj, const py::handle& scale_obj,
                     const py::object& bias_obj, std::int64_t axis, float epsilon, int threads) {
  const F32 x = as_f32(x_obj, "X");
  const F32 scale = as_f32(scale_obj, "Scale");
  const Shape s = shape_of(x);
  require(!s.empty(), "LayerNormalization: X must have rank >= 1");
  const std::size_t ax = normalize_axis(axis, s.size(), "LayerNormalization");
  const std::int64_t rows = product(s, 0, ax), cols = product(s, ax);
  require(scale.size() == cols, "LayerNormalization: Scale has " + std::to_string(scale.size()) +
                                    " values, the normalized shape has " + std::to_string(cols));
  F32 bias;
  if (!bias_obj.is_none()) {
    bias = as_f32(bias_obj, "B");
    require(bias.size() == cols, "LayerNormalization: B has " + std::to_string(bias.size()) +
                                     " values, the normalized shape has " + std::to_string(cols));
  }
  Shape stat(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(ax));
  stat.resize(s.size(), 1);
  F32 y(s), mean(stat), inv_std(stat);
  const float* xp = x.data();
  const float* sp = scale.data();
  const float* bp = bias_obj.is_none() ? nullptr : bias.data();
  float *yp = y.mutable_data(), *mp = mean.mutable_data(), *ip = inv_std.mutable_data();
  {
    py::gil_scoped_release no_gil;
    onnxep::layer_norm(xp, sp, bp, yp, mp, ip, rows, cols, epsilon, threads);
  }
  return py::make_tuple(y, mean, inv_std);
}

F32 channel_affine(const py::handle& x_obj, const py::handle& scale_obj,
                   const py::handle& shift_obj, bool relu, int threads) {
  const F32 x = as_f32(x_obj, "X");
  const F32 scale = as_f32(scale_obj, "scale");
  const F32 shift = as_f32(shift_obj, "shift");
  const Shape s = shape_of(x);
  require(s.size() >= 2, "channel_affine: X must have rank >= 2 (N, C, ...), got " + shape_str(s));
  require(scale.size() == s[1] && shift.size() == s[1],
          "channel_affine: scale and shift need " + std::to_string(s[1]) + " values each");
  F32 y(s);
  const float *xp = x.data(), *ap = scale.data(), *bp = shift.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release no_gil;
  onnxep::channel_affine(xp, ap, bp, yp, s[0], s[1], product(s, 2), relu, threads);
  return y;
}

// --- Conv and pools --------------------------------------------------------------------

onnxep::Window2d window(const Shape& kernel, const Shape& pads, const Shape& strides,
                        const Shape& dilations, const char* op) {
  const std::string name(op);
  require(kernel.size() == 2, name + ": kernel must have 2 values");
  require(pads.size() == 4, name + ": pads must have 4 values (top, left, bottom, right)");
  require(strides.size() == 2 && dilations.size() == 2,
          name + ": strides and dilations must have 2 values each");
  for (auto v : kernel) require(v >= 1, name + ": kernel sizes must be >= 1");
  for (auto v : pads) require(v >= 0, name + ": pads must be >= 0");
  for (auto v : strides) require(v >= 1, name + ": strides must be >= 1");
  for (auto v : dilations) require(v >= 1, name + ": dilations must be >= 1");
  return {kernel[0], kernel[1], pads[0], pads[1], pads[2], pads[3],
          strides[0], strides[1], dilations[0], dilations[1]};
}

F32 conv2d(const py::handle& x_obj, const py::handle& w_obj, const py::object& b_obj,
           const Shape& pads, const Shape& strides, const Shape& dilations, std::int64_t group,
           bool relu, int threads) {
  const F32 x = as_f32(x_obj, "X");
  const F32 w = as_f32(w_obj, "W");
  const Shape xs = shape_of(x), ws = shape_of(w);
  require(xs.size() == 4, "Conv: X must be 4-D (N, C, H, W), got " + shape_str(xs));
  require(ws.size() == 4, "Conv: W must be 4-D (M, C/group, kH, kW), got " + shape_str(ws));
  require(group >= 1 && xs[1] % group == 0 && ws[0] % group == 0 && ws[1] * group == xs[1],
          "Conv: X " + shape_str(xs) + ", W " + shape_str(ws) + " and group " +
              std::to_string(group) + " do not agree");
  onnxep::Conv2d p{xs[0], xs[1], xs[2], xs[3], ws[0], group, 0, 0,
                   window({ws[2], ws[3]}, pads, strides, dilations, "Conv"), relu};
  const onnxep::Window2d& k = p.win;
  p.oh = onnxep::pooled_size(p.h, k.kh, k.pad_t, k.pad_b, k.stride_h, k.dil_h, false);
  p.ow = onnxep::pooled_size(p.w, k.kw, k.pad_l, k.pad_r, k.stride_w, k.dil_w, false);
  require(p.oh >= 1 && p.ow >= 1, "Conv: the kernel does not fit the padded input " + shape_str(xs));
  F32 bias;
  if (!b_obj.is_none()) {
    bias = as_f32(b_obj, "B");
    require(bias.ndim() == 1 && bias.shape(0) == p.m,
            "Conv: B must have shape (" + std::to_string(p.m) + ",), got " + shape_str(shape_of(bias)));
  }
  F32 y({p.n, p.m, p.oh, p.ow});
  const float *xp = x.data(), *wp = w.data(), *bp = b_obj.is_none() ? nullptr : bias.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release no_gil;
  onnxep::conv2d(p, xp, wp, bp, yp, threads);
  return y;
}

F32 pool2d(bool is_max, const py::handle& x_obj, const Shape& kernel, const Shape& pads,
           const Shape& strides, const Shape& dilations, bool ceil_mode, bool count_include_pad,
           int threads) {
  const char* op = is_max ? "MaxPool" : "AveragePool";
  const F32 x = as_f32(x_obj, "X");
  const Shape xs = shape_of(x);
  require(xs.size() == 4, std::string(op) + ": X must be 4-D (N, C, H, W), got " + shape_str(xs));
  onnxep::Pool2d p{xs[0], xs[1], xs[2], xs[3], 0, 0, window(kernel, pads, strides, dilations, op)};
  const onnxep::Window2d& k = p.win;
  require(k.pad_t < k.kh && k.pad_b < k.kh && k.pad_l < k.kw && k.pad_r < k.kw,
          std::string(op) + ": pads must be smaller than the kernel");
  p.oh = onnxep::pooled_size(p.h, k.kh, k.pad_t, k.pad_b, k.stride_h, k.dil_h, ceil_mode);
  p.ow = onnxep::pooled_size(p.w, k.kw, k.pad_l, k.pad_r, k.stride_w, k.dil_w, ceil_mode);
  require(p.oh >= 1 && p.ow >= 1,
          std::string(op) + ": the window does not fit the padded input " + shape_str(xs));
  F32 y({p.n, p.c, p.oh, p.ow});
  const float* xp = x.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release no_gil;
  if (is_max) {
    onnxep::max_pool2d(p, xp, yp, threads);
  } else {
    onnxep::avg_pool2d(p, count_include_pad, xp, yp, threads);
  }
  return y;
}

void bind_elementwise(py::module_& m) {
  using U = onnxep::UnaryOp;
  const std::pair<const char*, U> plain[] = {
      {"relu", U::Relu}, {"sigmoid", U::Sigmoid}, {"tanh", U::Tanh}, {"exp", U::Exp},
      {"log", U::Log},   {"sqrt", U::Sqrt},       {"abs", U::Abs},   {"neg", U::Neg},
      {"erf", U::Erf}};
  for (const auto& [name, op] : plain) {
    m.def(
        name, [op = op](const py::handle& x, int threads) { return unary(op, x, 0, 0, threads); },
        py::arg("x"), py::kw_only(), py::arg("threads") = 0, "Elementwise float32 map.");
  }
  m.def(
      "leaky_relu",
      [](const py::handle& x, float alpha, int threads) {
        return unary(U::LeakyRelu, x, alpha, 0, threads);
      },
      py::arg("x"), py::kw_only(), py::arg("alpha") = 0.01f, py::arg("threads") = 0);
  m.def(
      "clip",
      [](const py::handle& x, float lo, float hi, int threads) {
        return unary(U::Clip, x, lo, hi, threads);
      },
      py::arg("x"), py::kw_only(), py::arg("lo"), py::arg("hi"), py::arg("threads") = 0);
  using B = onnxep::BinaryOp;
  const std::pair<const char*, B> ops[] = {{"add", B::Add}, {"sub", B::Sub}, {"mul", B::Mul},
                                           {"div", B::Div}, {"max", B::Max}, {"min", B::Min},
                                           {"pow", B::Pow}, {"add_relu", B::AddRelu}};
  for (const auto& [name, op] : ops) {
    m.def(
        name,
        [op = op](const py::handle& a, const py::handle& b, int threads) {
          return binary(op, a, b, threads);
        },
        py::arg("a"), py::arg("b"), py::kw_only(), py::arg("threads") = 0,
        "Elementwise float32 op with numpy broadcasting.");
  }
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "onnxep C++ kernels: float32, C-contiguous, GIL released while they run.";
  m.def("default_threads", &onnxep::default_threads, "Threads used when a call passes 0.");
  m.def("gemm_isa", &onnxep::gemm_isa, "The GEMM micro-kernel in use.");
  m.def("set_gemm_isa", &onnxep::set_gemm_isa, py::arg("isa"),
        "Force 'scalar', 'avx2' or 'avx512' ('auto' = best); False if the CPU lacks it.");
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::kw_only(),
        py::arg("alpha") = 1.0f, py::arg("beta") = 1.0f, py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("threads") = 0,
        "ONNX Gemm: alpha * op(A) @ op(B) + beta * C (C broadcast to the output).");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("threads") = 0,
        "numpy.matmul on float32 (batched, broadcast batch dims, 1-D operands).");
  bind_elementwise(m);
  m.def("softmax", &softmax, py::arg("x"), py::kw_only(), py::arg("axis") = -1,
        py::arg("threads") = 0, "Softmax along one axis (ONNX opset 13 semantics).");
  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("scale"), py::arg("bias") = py::none(),
        py::kw_only(), py::arg("axis") = -1, py::arg("epsilon") = 1e-5f, py::arg("threads") = 0,
        "LayerNormalization over x.shape[axis:]; returns (Y, Mean, InvStdDev).");
  m.def("channel_affine", &channel_affine, py::arg("x"), py::arg("scale"), py::arg("shift"),
        py::kw_only(), py::arg("relu") = false, py::arg("threads") = 0,
        "y = x * scale[c] + shift[c] over (N, C, ...), optionally max(y, 0).");
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::kw_only(),
        py::arg("pads"), py::arg("strides"), py::arg("dilations"), py::arg("group") = 1,
        py::arg("relu") = false, py::arg("threads") = 0,
        "NCHW convolution; pads are (top, left, bottom, right); relu fuses max(y, 0).");
  m.def(
      "max_pool2d",
      [](const py::handle& x, const Shape& kernel, const Shape& pads, const Shape& strides,
         const Shape& dilations, bool ceil_mode, int threads) {
        return pool2d(true, x, kernel, pads, strides, dilations, ceil_mode, false, threads);
      },
      py::arg("x"), py::kw_only(), py::arg("kernel"), py::arg("pads"), py::arg("strides"),
      py::arg("dilations"), py::arg("ceil_mode") = false, py::arg("threads") = 0,
      "2-D max pooling over NCHW (padding never wins).");
  m.def(
      "avg_pool2d",
      [](const py::handle& x, const Shape& kernel, const Shape& pads, const Shape& strides,
         const Shape& dilations, bool ceil_mode, bool count_include_pad, int threads) {
        return pool2d(false, x, kernel, pads, strides, dilations, ceil_mode, count_include_pad,
                      threads);
      },
      py::arg("x"), py::kw_only(), py::arg("kernel"), py::arg("pads"), py::arg("strides"),
      py::arg("dilations"), py::arg("ceil_mode") = false, py::arg("count_include_pad") = false,
      py::arg("threads") = 0,
      "2-D average pooling over NCHW.");
}
