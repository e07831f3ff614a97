// lstmkit CPU kernel: the LSTM recurrence over T steps, forward and hand-derived backward.
//
// It is the time loop of lstmkit.functional.lstm_step / lstm_step_backward, the same equations. Per step:
// the recurrent matrix product, split by columns over the threads (oneDNN's GEMM micro-kernel through
// ATen), then one fused pass per batch row (rows.h, vectorised by the compiler, exp and
// tanh as inline polynomials for float), split by rows. All T steps run in one parallel region with a barrier
// between the phases. The weight gradients stay outside the loop, one large product each
// (lstmkit.functional.weight_gradients, through `matmul`); so does the input projection with layer
// norm (input_projection), while without it each step multiplies x_t by W_ih next to h by W_hh: the
// (T, B, G*H) projection never goes through memory.
//
// Shape contract. T steps, B batch, H hidden, P = proj_size or H, G = 4 gates (i, f, g, o) or 3 with
// coupled gates (f, g, o). Optional tensors (?) are None when the variant is off.
//   x_gates  (T, B, G*H)   LN_x(W_ih x_t) + b_ih + b_hh
//   h0 (B, P), c0 (B, H)
//   w_hh (G*H, P); w_hr (P, H)?                       projection
//   w_ci (H)?, w_cf (H)?, w_co (H)?                   peephole (no w_ci with coupled gates)
//   ln_hh (G*H)?, ln_c_w (H)?, ln_c_b (H)?            layer norm on W_hh h and on the cell
//   mask (B, P)?                                      recurrent dropout
//   keep_c (T, B, H)?, keep_h (T, B, P)?              zoneout keep factors
//   batch_sizes (T,) int64?                           ragged batch: rows sorted by length, longest first;
//                                                     step t runs the first batch_sizes[t] rows only
// Python passes every argument by its name here (keyword-only, none left out: None for an absent one).
// forward(x_gates, h0, c0, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?, ln_c_b?, mask?, keep_c?, keep_h?,
//         batch_sizes?, record, w_ih?, bias?)
//               with w_ih (G*H, I) and bias (G*H)?: x_gates is x (T, B, I), projected step by step (no LN_x)
//               -> (output (T, B, P), h_T (B, P), c_T (B, H), the StepCache when `record`, else None)
//                  (ragged: outputs past a row's length are 0, h_T is the output at its last step)
// backward(d_output (T,B,P), dh_T, dc_T, cache: StepCache, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?,
//          mask?, keep_c?, keep_h?, batch_sizes?)
//          -> (dh_0 (B,P), dc_0 (B,H), StepGrads)
// StepCache, every step stacked: h_in (T,B,P), c_prev, i, f, g, o, c_new, tanh_c, m (T,B,H),
//          hh_normed (T,B,G*H)?, hh_rstd (T,B,1)?, c_normed (T,B,H)?, c_rstd (T,B,1)? (the last four: layer norm)
// StepGrads: da, dhh (T,B,G*H), dh_new (T,B,P), dc_hat (T,B,H), and with layer norm ln_totals (G*H + 2H):
//          the sums of functional.layer_norm_totals
//          Both cross to Python as lists in the order of the field lists below, which is that of
//          lstmkit.functional.StepCache and StepGrads: the module exports the names (step_cache_fields(),
//          step_grads_fields()) and the Python side refuses a build whose names or order differ.
// step(x (B,I), h (L,B,P), c (L,B,H), layers: a StepLayer per layer, zoneout_c, zoneout_h) -> (h, c): one
//          step of every layer at once, inference (streaming; see step.h). bf16 x: h bf16, c float32, and
//          each StepLayer's w_cat_vnni and w_hr_vnni in VNNI pairs, K = I + P even.
// matmul(a (M,K), b (K,N), bias (N)?) -> a·b + bias; matmul_tn(a (K,M), b (K,N)) -> a^T·b; tiled over
//          ATen's threads, b of any strides.
// layer_norm(x (N,n), gain (n), bias (n)?) -> (y, stats (N,2) = (mean, rstd));
// layer_norm_backward(dy, x, stats, gain) -> (dx, dgain): the input projection's layer norm.
// All other tensors contiguous, float32 or float64, on the CPU; or bf16 loops, where this CPU has bf16 products
// (bf16_products()): bf16 weights (w_hh, w_hr, w_ih), h0, x (projected per step), and so output, h_T and the
// cache's h_in and m, and the gradients da, dhh and dh_new; everything else float32 (x_gates, c0, bias, the
// peepholes, layer norm, masks and keep factors, d_output, dh_T, dc_T), as are the gates and the cell. The
// products accumulate in float32, and G*H, P, H (and I when projected per step) must be even.
// matmul of bf16 operands gives float32 (and takes a float32 bias).
//
// Files, one job each, compiled together into one extension (lstmkit/backend/cpu/__init__.py):
//   lstm_cpu.h        this contract and the entry points' declarations
//   lstm_cpu.cpp      the entry points: argument checks, then the loop or product for the tensors' dtype
//   bindings.cpp      the Python module (the only file that includes pybind11)
//   forward.h, backward.h, step.h     the time loops, and the one step through all layers
//   rows.h            the fused per-row gate arithmetic      fast_math.h   exp, tanh, sigmoid
//   gemm.h            GEMM, panels, the tiled product        layer_norm.h  layer norm of a row, of rows
//   threads.h         the loops' threads and barrier         buffer_pool.h large buffers, reused
//   ragged.h          a batch sorted by length               optional_tensors.h   absent tensors as pointers
//   bf16_rows.h       rows computed in float, rounded to bf16 once
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

namespace lstmkit {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// The per-step caches and gradients, field by field (an absent variant's fields are undefined tensors).
#define LSTMKIT_STEP_CACHE_FIELDS(X) \
  X(h_in) X(c_prev) X(i) X(f) X(g) X(o) X(c_new) X(tanh_c) X(m) X(hh_normed) X(hh_rstd) X(c_normed) X(c_rstd)
#define LSTMKIT_STEP_GRADS_FIELDS(X) X(da) X(dhh) X(dh_new) X(dc_hat) X(ln_totals)
#define LSTMKIT_TENSOR_MEMBER(name) Tensor name;
struct StepCache {
  LSTMKIT_STEP_CACHE_FIELDS(LSTMKIT_TENSOR_MEMBER)
};
struct StepGrads {
  LSTMKIT_STEP_GRADS_FIELDS(LSTMKIT_TENSOR_MEMBER)
};
#undef LSTMKIT_TENSOR_MEMBER

// One layer's weights for step (lstmkit.backend.cpu.prepare_step): the module's own parameters as they lie
// (nothing copied: a write to them is seen at the next step); bf16 adds copies of the products' weights in
// VNNI pairs (for more than two rows).
struct StepLayer {
  OptTensor w_ih, w_hh;          // (G*H, I_l), (G*H, P)
  OptTensor w_cat_vnni;          // (K/2, G*H, 2) = [W_ih W_hh]^T in VNNI pairs, K = I_l + P: bf16 only
  OptTensor bias_ih, bias_hh;    // (G*H)?
  OptTensor w_hr;                // (P, H)? projection
  OptTensor w_hr_vnni;           // (H/2, P, 2)? = W_hr^T in VNNI pairs: bf16 only
  OptTensor w_ci, w_cf, w_co;    // (H)? peepholes
};

using ForwardResult = std::tuple<Tensor, Tensor, Tensor, std::optional<StepCache>>;  // output, h_T, c_T, cache
using BackwardResult = std::tuple<Tensor, Tensor, StepGrads>;                        // dh_0, dc_0, grads

ForwardResult lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                           const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                           const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& ln_c_b,
                           const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                           const OptTensor& batch_sizes, bool record, const OptTensor& w_ih, const OptTensor& bias);

BackwardResult lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T, const StepCache& cache,
                             const Tensor& w_hh, const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                             const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                             const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                             const OptTensor& batch_sizes);

std::tuple<Tensor, Tensor> lstm_step(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h);

bool bf16_products();  // whether this CPU multiplies bf16 operands (AVX512-BF16 or AMX): the bf16 loops run
Tensor matmul(const Tensor& a, const Tensor& b, const OptTensor& bias);
Tensor matmul_tn(const Tensor& a, const Tensor& b);
std::tuple<Tensor, Tensor> layer_norm(const Tensor& x, const Tensor& gain, const OptTensor& bias);
std::tuple<Tensor, Tensor> layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats,
                                               const Tensor& gain);

}  // namespace lstmkit
