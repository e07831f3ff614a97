// lstmkit CPU kernel: the LSTM recurrence over T steps, forward and hand-derived backward.
//
// It is the time loop of lstmkit.functional.lstm_step / lstm_step_backward, the same equations: per step,
// the recurrent matrix product (ATen's GEMM), then one fused pass per batch row (the row functions below,
// vectorised by the compiler, exp/tanh from the vector math library). The input projection and the weight
// gradients stay outside, as one large product each (lstmkit.functional.input_projection and
// weight_gradients).
//
// Shape contract. T steps, B batch, H hidden, P = proj_size or H, G = 4 gates (i, f, g, o) or 3 with
// coupled gates (f, g, o). Optional tensors (?) are None when the variant is off.
//   x_gates  (T, B, G*H)   LN_x(W_ih x_t) + b_ih + b_hh
//   h0 (B, P), c0 (B, H)
//   w_hh (G*H, P); w_hr (P, H)?                       projection
//   w_ci (H)?, w_cf (H)?, w_co (H)?                   peephole (no w_ci with coupled gates)
//   ln_hh (G*H)?, ln_c_w (H)?, ln_c_b (H)?            layer norm on W_hh h and on the cell
//   mask (B, P)?                                      recurrent dropout
//   keep_c (T, B, H)?, keep_h (T, B, P)?              zoneout / padding keep factors
// forward(...) -> [output (T, B, P), h_T (B, P), c_T (B, H),
//                  then StepCache stacked: h_in (T,B,P), c_prev, i, f, g, o, c_new, tanh_c, m (T,B,H),
//                  hh_normed (T,B,G*H)?, hh_rstd (T,B,1)?, c_normed (T,B,H)?, c_rstd (T,B,1)?]
// backward(d_output (T,B,P), dh_T, dc_T, StepCache list, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?,
//          mask?, keep_c?, keep_h?)
//          -> [dh_0 (B,P), dc_0 (B,H), then StepGrads stacked: da, dhh (T,B,G*H), dh_new (T,B,P), dc_hat (T,B,H)]
// All tensors contiguous, float32 or float64, on the CPU.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

using at::Tensor;
using OptTensor = std::optional<Tensor>;

namespace {

constexpr double kLayerNormEps = 1e-5;

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
const T* data_or_null(const OptTensor& t) {
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

// An absent variant's weights or keep factors read as zeros: w * c adds 0 and a lerp by 0 keeps the new
// value, exactly; so the row loops have no branches and vectorise.
template <typename T>
const T* data_or_zeros(const OptTensor& t, const std::vector<T>& zeros) {
  return t.has_value() ? t->data_ptr<T>() : zeros.data();
}

// Rows per parallel task: enough elementwise work (about 16k values) to pay for waking threads.
inline int64_t rows_per_task(int64_t row_size) { return std::max<int64_t>(1, 16384 / row_size); }

// ---- layer norm over one row ---------------------------------------------------------------------------

// normed = (x - mean) / sqrt(var + eps); returns 1 / sqrt(var + eps).
template <typename T>
T layer_norm_row(const T* __restrict x, T* __restrict normed, int64_t n) {
  T mean = 0, var = 0;
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= T(n);
  for (int64_t j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  const T rstd = T(1) / std::sqrt(var / T(n) + T(kLayerNormEps));
  for (int64_t j = 0; j < n; ++j) normed[j] = (x[j] - mean) * rstd;
  return rstd;
}

// In place: d <- rstd * (d - mean(d) - normed * mean(d * normed)), dL/dx from dL/d(normed).
template <typename T>
void layer_norm_backward_row(T* __restrict d, const T* __restrict normed, T rstd, int64_t n) {
  T mean_d = 0, mean_dn = 0;
  for (int64_t j = 0; j < n; ++j) {
    mean_d += d[j];
    mean_dn += d[j] * normed[j];
  }
  mean_d /= T(n);
  mean_dn /= T(n);
  for (int64_t j = 0; j < n; ++j) d[j] = rstd * (d[j] - mean_d - normed[j] * mean_dn);
}

// ---- forward rows --------------------------------------------------------------------------------------

// i, f, g and c̃ = f ⊙ c_prev + i ⊙ g for one row; a points at the G*H pre-activations.
template <typename T, bool Coupled>
void gates_row(const T* __restrict a, const T* __restrict c_prev, const T* __restrict w_ci,
               const T* __restrict w_cf, int64_t H, T* __restrict i_out, T* __restrict f_out,
               T* __restrict g_out, T* __restrict c_new) {
  const T* a_i = a;
  const T* a_f = Coupled ? a : a + H;
  const T* a_g = a_f + H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T f = sigmoid(a_f[j] + w_cf[j] * c_prev[j]);
    const T i = Coupled ? T(1) - f : sigmoid(a_i[j] + w_ci[j] * c_prev[j]);
    const T g = std::tanh(a_g[j]);
    f_out[j] = f;
    i_out[j] = i;
    g_out[j] = g;
    c_new[j] = f * c_prev[j] + i * g;
  }
}

// o, tanh(ĉ), m = o ⊙ tanh(ĉ) and the carried cell c_t = c̃ + k (c_prev - c̃) for one row.
template <typename T>
void output_row(const T* __restrict a_o, const T* __restrict c_new, const T* __restrict c_hat,
                const T* __restrict c_prev, const T* __restrict w_co, const T* __restrict keep_c, int64_t H,
                T* __restrict o_out, T* __restrict tanh_out, T* __restrict m_out, T* __restrict c_out) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T o = sigmoid(a_o[j] + w_co[j] * c_new[j]);
    const T tc = std::tanh(c_hat[j]);
    o_out[j] = o;
    tanh_out[j] = tc;
    m_out[j] = o * tc;
    c_out[j] = c_new[j] + keep_c[j] * (c_prev[j] - c_new[j]);
  }
}

// ---- backward rows -------------------------------------------------------------------------------------

// From dL/dm (m = o ⊙ tanh(ĉ)) and dL/dc_t: the four pre-activation gradients da and dL/dc_{t-1}.
// dc_hat receives dL/dĉ; dcn holds dL/dc̃ from the hidden path (after the cell's layer norm, if any).
template <typename T, bool Coupled>
void gate_grads_row(const T* __restrict dm, const T* __restrict dcn, const T* __restrict i,
                    const T* __restrict f, const T* __restrict g, const T* __restrict o,
                    const T* __restrict tanh_c, const T* __restrict c_prev, const T* __restrict w_ci,
                    const T* __restrict w_cf, const T* __restrict w_co, const T* __restrict keep_c, int64_t H,
                    T* __restrict da, T* __restrict dc) {
  T* da_i = da;
  T* da_f = Coupled ? da : da + H;
  T* da_g = da_f + H;
  T* da_o = da_g + H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T dc_t = dc[j];
    const T d_o = dm[j] * tanh_c[j] * o[j] * (T(1) - o[j]);
    const T dc_new = dc_t * (T(1) - keep_c[j]) + dcn[j] + d_o * w_co[j];
    const T di = dc_new * g[j];
    const T df = dc_new * c_prev[j];
    const T d_i = di * i[j] * (T(1) - i[j]);
    const T d_f = (Coupled ? df - di : df) * f[j] * (T(1) - f[j]);  // coupled: i = 1 - f
    // With coupled gates da_i aliases da_f: the second store wins, and w_ci reads as zeros.
    da_i[j] = d_i;
    da_f[j] = d_f;
    da_g[j] = dc_new * i[j] * (T(1) - g[j] * g[j]);
    da_o[j] = d_o;
    dc[j] = dc_new * f[j] + dc_t * keep_c[j] + d_i * w_ci[j] + d_f * w_cf[j];
  }
}

// ---- the loops -----------------------------------------------------------------------------------------

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h) {
  const int64_t steps = x_gates.size(0), B = x_gates.size(1), H = c0.size(1), P = h0.size(1);
  const int64_t GH = x_gates.size(2);
  const bool coupled = GH == 3 * H, project = w_hr.has_value();
  auto make = [&](std::initializer_list<int64_t> shape) { return at::empty(shape, x_gates.options()); };
  Tensor output = make({steps, B, P}), h_in = make({steps, B, P}), c_prev = make({steps, B, H});
  Tensor gi = make({steps, B, H}), gf = make({steps, B, H}), gg = make({steps, B, H}), go = make({steps, B, H});
  Tensor c_new = make({steps, B, H}), tanh_c = make({steps, B, H}), m = make({steps, B, H});
  Tensor hh_normed, hh_rstd, c_normed, c_rstd;
  if (ln_hh) hh_normed = make({steps, B, GH}), hh_rstd = make({steps, B, 1});
  if (ln_c_w) c_normed = make({steps, B, H}), c_rstd = make({steps, B, 1});
  Tensor hh = make({B, GH}), c_cur = c0.clone(), w_hh_t = w_hh.t();

  const std::vector<T> zeros(std::max({B * H, B * P, GH}), T(0));
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w), *ln_cb_p = data_or_null<T>(ln_c_b);
  const T *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);

  for (int64_t t = 0; t < steps; ++t) {
    const Tensor h_prev = t == 0 ? h0 : output[t - 1];
    Tensor h_in_t = h_in[t];
    if (mask) {
      at::mul_out(h_in_t, h_prev, *mask);
    } else {
      h_in_t.copy_(h_prev);
    }
    c_prev[t].copy_(c_cur);
    at::mm_out(hh, h_in_t, w_hh_t);  // (B, G*H) the recurrent GEMM

    const T* xg = x_gates[t].data_ptr<T>();
    T* hh_p = hh.data_ptr<T>();
    const T* h_prev_p = h_prev.data_ptr<T>();
    const T* cp = c_prev[t].data_ptr<T>();
    T *cc = c_cur.data_ptr<T>(), *out = output[t].data_ptr<T>();
    T *pi = gi[t].data_ptr<T>(), *pf = gf[t].data_ptr<T>(), *pg = gg[t].data_ptr<T>(), *po = go[t].data_ptr<T>();
    T *pcn = c_new[t].data_ptr<T>(), *ptc = tanh_c[t].data_ptr<T>(), *pm = m[t].data_ptr<T>();
    T* phn = ln_hh ? hh_normed[t].data_ptr<T>() : nullptr;
    T* phr = ln_hh ? hh_rstd[t].data_ptr<T>() : nullptr;
    T* pcnm = ln_c_w ? c_normed[t].data_ptr<T>() : nullptr;
    T* pcr = ln_c_w ? c_rstd[t].data_ptr<T>() : nullptr;
    const T* kc = keep_c_p ? keep_c_p + t * B * H : zeros.data();
    const T* kh = keep_h_p ? keep_h_p + t * B * P : zeros.data();

    at::parallel_for(0, B, rows_per_task(GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* a = hh_p + b * GH;  // becomes the pre-activations a = x_gates + LN_h(W_hh h_in)
        const T* x = xg + b * GH;
        if (ln_hh_p) {
          T* normed = phn + b * GH;
          phr[b] = layer_norm_row(a, normed, GH);
          for (int64_t j = 0; j < GH; ++j) a[j] = x[j] + normed[j] * ln_hh_p[j];
        } else {
          for (int64_t j = 0; j < GH; ++j) a[j] += x[j];
        }
        const int64_t r = b * H;
        (coupled ? gates_row<T, true> : gates_row<T, false>)(a, cp + r, w_ci_p, w_cf_p, H, pi + r, pf + r, pg + r,
                                                             pcn + r);
        const T* c_hat = pcn + r;  // tanh's argument: c̃, or LN_c(c̃) written into the tanh_c row first
        if (ln_cw_p) {
          pcr[b] = layer_norm_row(pcn + r, pcnm + r, H);
          for (int64_t j = 0; j < H; ++j) ptc[r + j] = pcnm[r + j] * ln_cw_p[j] + ln_cb_p[j];
          c_hat = ptc + r;
        }
        output_row(a + GH - H, pcn + r, c_hat, cp + r, w_co_p, kc + r, H, po + r, ptc + r, pm + r, cc + r);
        if (!project) {  // h_t = m + k (h_prev - m)
          T* h = out + b * P;
          const T *mr = pm + r, *hp = h_prev_p + b * P, *k = kh + b * P;
          for (int64_t j = 0; j < P; ++j) h[j] = mr[j] + k[j] * (hp[j] - mr[j]);
        }
      }
    });
    if (project) {
      Tensor out_t = output[t];
      at::mm_out(out_t, m[t], w_hr->t());  // (B, P) h̃ = W_hr m
      if (keep_h_p) out_t.add_(keep_h->select(0, t) * (h_prev - out_t));
    }
  }
  Tensor h_T = output[steps - 1].clone();
  return {output, h_T, c_cur, h_in, c_prev, gi, gf, gg, go, c_new, tanh_c, m, hh_normed, hh_rstd, c_normed, c_rstd};
}

template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h) {
  // cache: the StepCache fields in order (h_in, c_prev, i, f, g, o, c_new, tanh_c, m, hh_normed, hh_rstd,
  // c_normed, c_rstd); the last four only with layer norm.
  const Tensor &c_prev = *cache[1], &gi = *cache[2], &gf = *cache[3], &gg = *cache[4], &go = *cache[5],
               &tanh_c = *cache[7];
  const Tensor hh_normed = cache[9].value_or(Tensor()), hh_rstd = cache[10].value_or(Tensor());
  const Tensor c_normed = cache[11].value_or(Tensor()), c_rstd = cache[12].value_or(Tensor());
  const int64_t steps = d_output.size(0), B = d_output.size(1), P = d_output.size(2), H = c_prev.size(2);
  const int64_t GH = w_hh.size(0);
  const bool coupled = GH == 3 * H, project = w_hr.has_value();
  auto make = [&](std::initializer_list<int64_t> shape) { return at::empty(shape, d_output.options()); };

  Tensor da = make({steps, B, GH}), dh_new = make({steps, B, P}), dc_hat = make({steps, B, H});
  Tensor dhh = ln_hh ? make({steps, B, GH}) : da;
  Tensor dh = dh_T.clone(), dc = dc_T.clone();  // dL/dh_t, dL/dc_t carried back through time
  Tensor dh_total = make({B, P}), dm = project ? make({B, H}) : Tensor();

  const std::vector<T> zeros(std::max({B * H, B * P, GH}), T(0));
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w);
  const T *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);

  for (int64_t t = steps - 1; t >= 0; --t) {
    at::add_out(dh_total, dh, d_output[t]);  // this step's output share plus what step t+1 sent back
    const T* kh = keep_h_p ? keep_h_p + t * B * P : zeros.data();
    const T* kc = keep_c_p ? keep_c_p + t * B * H : zeros.data();
    T* dhn = dh_new[t].data_ptr<T>();
    const T* dht = dh_total.data_ptr<T>();
    for (int64_t k = 0; k < B * P; ++k) dhn[k] = dht[k] * (T(1) - kh[k]);  // h_t = k h_{t-1} + (1 - k) h̃_t
    if (project) at::mm_out(dm, dh_new[t], *w_hr);  // (B, H)
    const T* dm_p = project ? dm.data_ptr<T>() : dhn;

    T *dap = da[t].data_ptr<T>(), *dchp = dc_hat[t].data_ptr<T>(), *dcp = dc.data_ptr<T>();
    T* dhhp = dhh[t].data_ptr<T>();
    const T *pi = gi[t].data_ptr<T>(), *pf = gf[t].data_ptr<T>(), *pg = gg[t].data_ptr<T>();
    const T *po = go[t].data_ptr<T>(), *ptc = tanh_c[t].data_ptr<T>(), *pcp = c_prev[t].data_ptr<T>();
    const T* pcnm = ln_c_w ? c_normed[t].data_ptr<T>() : nullptr;
    const T* pcr = ln_c_w ? c_rstd[t].data_ptr<T>() : nullptr;
    const T* phn = ln_hh ? hh_normed[t].data_ptr<T>() : nullptr;
    const T* phr = ln_hh ? hh_rstd[t].data_ptr<T>() : nullptr;

    at::parallel_for(0, B, rows_per_task(GH), [&](int64_t b0, int64_t b1) {
      std::vector<T> dcn(H);  // dL/dc̃ through the hidden path
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = b * H;
        const T *dmr = dm_p + r, *o = po + r, *tc = ptc + r;
        T* dch = dchp + r;
        for (int64_t j = 0; j < H; ++j) dch[j] = dmr[j] * o[j] * (T(1) - tc[j] * tc[j]);  // dL/dĉ
        for (int64_t j = 0; j < H; ++j) dcn[j] = ln_cw_p ? dch[j] * ln_cw_p[j] : dch[j];
        if (ln_cw_p) layer_norm_backward_row(dcn.data(), pcnm + r, pcr[b], H);
        T* a = dap + b * GH;
        (coupled ? gate_grads_row<T, true> : gate_grads_row<T, false>)(
            dmr, dcn.data(), pi + r, pf + r, pg + r, o, tc, pcp + r, w_ci_p, w_cf_p, w_co_p, kc + r, H, a, dcp + r);
        if (ln_hh_p) {
          T* d = dhhp + b * GH;
          for (int64_t j = 0; j < GH; ++j) d[j] = a[j] * ln_hh_p[j];
          layer_norm_backward_row(d, phn + b * GH, phr[b], GH);
        }
      }
    });
    at::mm_out(dh, dhh[t], w_hh);  // (B, P) back through W_hh
    if (mask) dh.mul_(*mask);
    if (keep_h_p) dh.add_(dh_total * keep_h->select(0, t));
  }
  return {dh, dc, da, dhh, dh_new, dc_hat};
}

std::vector<Tensor> lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h) {
  TORCH_CHECK(x_gates.dim() == 3 && x_gates.size(0) > 0, "x_gates must be (T, B, G*H) with T > 0");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x_gates.scalar_type(), "lstmkit_forward", [&] {
    result = forward_impl<scalar_t>(x_gates, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, mask,
                                    keep_c, keep_h);
  });
  return result;
}

std::vector<Tensor> lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h) {
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(d_output.scalar_type(), "lstmkit_backward", [&] {
    result = backward_impl<scalar_t>(d_output, dh_T, dc_T, cache, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w,
                                     mask, keep_c, keep_h);
  });
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstm_forward, "LSTM recurrence forward (see the shape contract in lstm_cpu.cpp)");
  m.def("backward", &lstm_backward, "LSTM recurrence backward (see the shape contract in lstm_cpu.cpp)");
}
