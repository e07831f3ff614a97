// The entry points declared in lstm_cpu.h: each checks its arguments, then runs the loop or product for the
// tensors' floating type. The one translation unit of the kernel's arithmetic (every header is compiled here).

// The loops' types: T for the arithmetic, S for the products' operands (see forward.h). bf16 weights run the
// loop with float arithmetic, where the CPU has bf16 products; float and double run in their own type.
#include "lstm_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <optional>
#include <tuple>
#include <vector>

#include "backward.h"
#include "buffer_pool.h"
#include "forward.h"
#include "gemm.h"
#include "layer_norm.h"
#include "optional_tensors.h"
#include "ragged.h"
#include "step.h"

namespace lstmkit {

namespace {

// Runs body(T{}, S{}) for the operand type S (float, double or bf16) of w_hh (the weights, or step's x), T
// the type of `arithmetic` (the cell's).
template <typename Body>
void for_operands(const Tensor& w_hh, const Tensor& arithmetic, const char* name, Body&& body) {
  if (w_hh.scalar_type() == at::kBFloat16) {
    TORCH_CHECK(has_bf16_products(), name, ": this CPU has no bf16 products (AVX512-BF16 or AMX)");
    TORCH_CHECK(arithmetic.scalar_type() == at::kFloat, name, ": bf16 weights run with float32 arithmetic");
    body(float{}, BF16{});
    return;
  }
  TORCH_CHECK(arithmetic.scalar_type() == w_hh.scalar_type(), name, ": the weights' and the state's types differ");
  AT_DISPATCH_FLOATING_TYPES(w_hh.scalar_type(), "lstmkit_loop", [&] { body(scalar_t{}, scalar_t{}); });
}

// bf16 products read their operands' rows in pairs: every inner size of the loops' products must be even.
void check_even(const Tensor& w_hh, std::initializer_list<int64_t> sizes) {
  if (w_hh.scalar_type() != at::kBFloat16) return;
  for (const int64_t size : sizes) TORCH_CHECK(size % 2 == 0, "bf16 loops need even sizes (G*H, P, H, I)");
}

}  // namespace

ForwardResult lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                           const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                           const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& ln_c_b,
                           const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                           const OptTensor& batch_sizes, bool record, const OptTensor& w_ih, const OptTensor& bias) {
  TORCH_CHECK(x_gates.dim() == 3 && x_gates.size(0) > 0, "x_gates must be (T, B, G*H) with T > 0");
  TORCH_CHECK(!w_ih || (w_ih->size(0) == w_hh.size(0) && w_ih->size(1) == x_gates.size(2) && !ln_hh),
              "w_ih must be (G*H, I) for x (T, B, I), without layer norm");
  check_batch_sizes(batch_sizes, x_gates.size(0), x_gates.size(1));
  check_even(w_hh, {w_hh.size(0), h0.size(1), c0.size(1), w_ih ? x_gates.size(2) : 0});
  TORCH_CHECK(h0.scalar_type() == w_hh.scalar_type() && (!w_ih || x_gates.scalar_type() == w_hh.scalar_type()),
              "forward: h0 (and x, projected per step) must have the weights' type");
  ForwardResult result;
  for_operands(w_hh, c0, "lstmkit_forward", [&](auto arithmetic, auto operand) {
    using T = decltype(arithmetic);
    using S = decltype(operand);
    result = forward_impl<T, S>(x_gates, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, mask, keep_c,
                                keep_h, batch_sizes, record, w_ih, bias);
  });
  return result;
}

BackwardResult lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T, const StepCache& cache,
                             const Tensor& w_hh, const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                             const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                             const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                             const OptTensor& batch_sizes) {
  check_batch_sizes(batch_sizes, d_output.size(0), d_output.size(1));
  TORCH_CHECK(ln_hh.has_value() == ln_c_w.has_value(), "layer norm needs ln_hh and ln_c_w together");
  TORCH_CHECK(cache.hh_normed.defined() == ln_hh.has_value(), "the cache's layer norm fields must match ln_hh");
  check_even(w_hh, {w_hh.size(0), d_output.size(2)});
  BackwardResult result;
  for_operands(w_hh, d_output, "lstmkit_backward", [&](auto arithmetic, auto operand) {
    using T = decltype(arithmetic);
    using S = decltype(operand);
    result = backward_impl<T, S>(d_output, dh_T, dc_T, cache, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, mask,
                                 keep_c, keep_h, batch_sizes);
  });
  return result;
}

std::tuple<Tensor, Tensor> lstm_step(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h) {
  TORCH_CHECK(x.dim() == 2 && h.dim() == 3 && c.dim() == 3 && x.size(0) == h.size(1), "step: shapes");
  TORCH_CHECK(static_cast<int64_t>(layers.size()) == h.size(0), "step: one StepLayer per layer");
  TORCH_CHECK(h.scalar_type() == x.scalar_type(), "step: h must have x's type");
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  for (const StepLayer& w : layers) {
    const auto is = [&](const OptTensor& t, bool wanted) { return t.has_value() == wanted; };
    TORCH_CHECK(is(w.w_ih, true) && is(w.w_hh, true) && is(w.w_cat_vnni, bf16) &&
                    is(w.w_hr_vnni, bf16 && w.w_hr.has_value()),
                "step: every layer takes w_ih and w_hh (and w_hr), and bf16 also their VNNI copies");
    for (const OptTensor& t :
         {w.w_ih, w.w_hh, w.w_cat_vnni, w.w_hr, w.w_hr_vnni, w.bias_ih, w.bias_hh, w.w_ci, w.w_cf, w.w_co}) {
      TORCH_CHECK(!t || t->is_contiguous(), "step: the weights must be contiguous");
    }
  }
  std::tuple<Tensor, Tensor> result;  // (bf16 x, h and weights in VNNI pairs: float32 c)
  for_operands(x, c, "lstmkit_step", [&](auto arithmetic, auto operand) {
    using T = decltype(arithmetic);
    using S = decltype(operand);
    result = step_impl<T, S>(x, h, c, layers, zoneout_c, zoneout_h);
  });
  return result;
}

bool bf16_products() { return has_bf16_products(); }

// a (M, K) · b (K, N) + bias (N)?; a contiguous, b any strides, one floating type; bf16 operands give a
// float32 product (and take a float32 bias).
Tensor matmul(const Tensor& a, const Tensor& b, const OptTensor& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes do not match");
  TORCH_CHECK(a.is_contiguous() && a.scalar_type() == b.scalar_type(), "matmul: layouts");
  const bool bf16 = a.scalar_type() == at::kBFloat16;
  const auto result = bf16 ? a.options().dtype(at::kFloat) : a.options();
  TORCH_CHECK(!bias || (bias->numel() == b.size(1) && bias->is_contiguous() && bias->dtype() == result.dtype()),
              "matmul: bias must be (N,), of the product's type");
  TORCH_CHECK(!bf16 || has_bf16_products(), "matmul: this CPU has no bf16 products (AVX512-BF16 or AMX)");
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor c = pool().get({M, N}, result, false);
  auto product = [&](auto operand) {
    using S = decltype(operand);
    Tensor rows = a;  // bf16 with odd K: a zero column K for the panels' zero row (see Panels)
    if (bf16 && K % 2) rows = at::constant_pad_nd(a, {0, 1});
    const Panels<S> panels(b.data_ptr<S>(), K, N, b.stride(0), b.stride(1), b.options());
    tiled_gemm<S>(M, N, K, rows.data_ptr<S>(), rows.size(1), panels, data_or_null<Acc<S>>(bias), c.data_ptr<Acc<S>>());
  };
  if (bf16) {
    product(BF16{});
  } else {
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstmkit_matmul", [&] { product(scalar_t{}); });
  }
  return c;
}

// a^T (M, K) · b (K, N) for a (K, M) contiguous, b any strides: the weight gradients, sums over K = T*B
// rows. The operand with fewer columns is transposed (into a reused buffer), the other packed into panels;
// when that is b, the product is formed as (b^T a)^T.
Tensor matmul_tn(const Tensor& a, const Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0), "matmul_tn: shapes do not match");
  TORCH_CHECK(a.is_contiguous() && a.scalar_type() == b.scalar_type(), "matmul_tn: layouts");
  if (a.size(1) > b.size(1) && b.is_contiguous()) {
    const Tensor c_t = matmul_tn(b, a);
    Tensor c = pool().get({a.size(1), b.size(1)}, c_t.options(), false);
    return c.copy_(c_t.t());
  }
  const int64_t K = a.size(0), M = a.size(1);
  Tensor a_t = pool().get({M, K}, a.options(), false);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, a.scalar_type(), "lstmkit_transpose", [&] {
    transpose<scalar_t>(a.data_ptr<scalar_t>(), K, M, a_t.data_ptr<scalar_t>());
  });
  return matmul(a_t, b, std::nullopt);
}

// Layer norm over the rows of x (N, n): [y = LN(x) ⊙ gain + bias?, stats (N, 2) = (mean, rstd)].
std::tuple<Tensor, Tensor> layer_norm(const Tensor& x, const Tensor& gain, const OptTensor& bias) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && gain.numel() == x.size(1) && gain.is_contiguous(),
              "layer_norm: x (N, n) and gain (n,), contiguous");
  TORCH_CHECK(!bias || (bias->numel() == x.size(1) && bias->is_contiguous()), "layer_norm: bias must be (n,)");
  Tensor y = pool().get({x.size(0), x.size(1)}, x.options(), false), stats = at::empty({x.size(0), 2}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_layer_norm", [&] {
    layer_norm_rows<scalar_t>(x.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(), data_or_null<scalar_t>(bias),
                              x.size(0), x.size(1), y.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>());
  });
  return {y, stats};
}

// Its backward: [dx (N, n), dgain (n)] from dy (N, n), x, stats and gain as in layer_norm.
std::tuple<Tensor, Tensor> layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats,
                                               const Tensor& gain) {
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.is_contiguous() && x.is_contiguous() && stats.is_contiguous() &&
                  gain.is_contiguous() && stats.numel() == 2 * x.size(0) && gain.numel() == x.size(1),
              "layer_norm_backward: dy, x (N, n), stats (N, 2), gain (n,), contiguous");
  Tensor dx = pool().get({x.size(0), x.size(1)}, x.options(), false);
  Tensor partial = at::zeros({at::get_num_threads(), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_layer_norm_backward", [&] {
    layer_norm_rows_backward<scalar_t>(dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(),
                                       gain.data_ptr<scalar_t>(), x.size(0), x.size(1), dx.data_ptr<scalar_t>(),
                                       partial.data_ptr<scalar_t>());
  });
  return {dx, partial.sum(0)};
}

}  // namespace lstmkit
