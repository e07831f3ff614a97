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
// forward(x_gates, ..., batch_sizes?, record, w_ih?, bias?)
//               with w_ih (G*H, I) and bias (G*H)?: x_gates is x (T, B, I), projected step by step (no LN_x)
//               -> [output (T, B, P), h_T (B, P), c_T (B, H), and when `record`
//                  the StepCache stacked: h_in (T,B,P), c_prev, i, f, g, o, c_new, tanh_c, m (T,B,H),
//                  hh_normed (T,B,G*H)?, hh_rstd (T,B,1)?, c_normed (T,B,H)?, c_rstd (T,B,1)?]
//                  (ragged: outputs past a row's length are 0, h_T is the output at its last step)
// backward(d_output (T,B,P), dh_T, dc_T, StepCache list, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?,
//          mask?, keep_c?, keep_h?, batch_sizes?)
//          -> [dh_0 (B,P), dc_0 (B,H), then StepGrads: da, dhh (T,B,G*H), dh_new (T,B,P), dc_hat (T,B,H),
//              and with layer norm ln_totals (G*H + 2H): the sums of functional.layer_norm_totals]
// step(x (B,I), h (L,B,P), c (L,B,H), per-layer weights, zoneout_c, zoneout_h) -> [h, c]: one step of
//          every layer at once, inference (streaming; see step.h).
// matmul(a (M,K), b (K,N), bias (N)?) -> a·b + bias; matmul_tn(a (K,M), b (K,N)) -> a^T·b; tiled over
//          ATen's threads, b of any strides.
// layer_norm(x (N,n), gain (n), bias (n)?) -> [y, stats (N,2) = (mean, rstd)];
// layer_norm_backward(dy, x, stats, gain) -> [dx, dgain]: the input projection's layer norm.
// All other tensors contiguous, float32 or float64, on the CPU.
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
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace lstmkit {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

std::vector<Tensor> lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h, const OptTensor& batch_sizes, bool record,
                                 const OptTensor& w_ih, const OptTensor& bias);

std::vector<Tensor> lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h, const OptTensor& batch_sizes);

std::vector<Tensor> lstm_step(const Tensor& x, const Tensor& h, const Tensor& c, const std::vector<OptTensor>& layers,
                              double zoneout_c, double zoneout_h);

Tensor matmul(const Tensor& a, const Tensor& b, const OptTensor& bias);
Tensor matmul_tn(const Tensor& a, const Tensor& b);
std::vector<Tensor> layer_norm(const Tensor& x, const Tensor& gain, const OptTensor& bias);
std::vector<Tensor> layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats, const Tensor& gain);

}  // namespace lstmkit
