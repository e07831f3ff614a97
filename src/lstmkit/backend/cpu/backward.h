// The backward time loop: from t = T down to 1, dL/dh and dL/dc carried back through time (the hand-derived
// lstmkit.functional.lstm_step_backward), leaving the per-step gradients the weight gradients are summed from.
// T and S as in forward.h: the products' operands (the weights, and the gradients da, dhh, dh_new that
// multiply them and the weight gradients' products) are S; what is carried through time (dh, dc) is T.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <type_traits>
#include <vector>

#include "bf16_rows.h"
#include "buffer_pool.h"
#include "gemm.h"
#include "layer_norm.h"
#include "lstm_cpu.h"
#include "optional_tensors.h"
#include "ragged.h"
#include "rows.h"
#include "threads.h"

namespace lstmkit {

template <typename T, typename S>
BackwardResult backward_impl(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T, const StepCache& cache,
                             const Tensor& w_hh, const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                             const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                             const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                             const OptTensor& batch_sizes) {
  // The cache's last four fields are defined only with layer norm.
  const Tensor &c_prev = cache.c_prev, &gi = cache.i, &gf = cache.f, &gg = cache.g, &go = cache.o,
               &tanh_c = cache.tanh_c;
  const Tensor &hh_normed = cache.hh_normed, &hh_rstd = cache.hh_rstd;
  const Tensor &c_normed = cache.c_normed, &c_rstd = cache.c_rstd;
  const int64_t steps = d_output.size(0), B = d_output.size(1), P = d_output.size(2), H = c_prev.size(2);
  const int64_t GH = w_hh.size(0), BH = B * H, BP = B * P;
  const bool coupled = GH == 3 * H, ragged = batch_sizes.has_value();
  const Active active{ragged ? batch_sizes->data_ptr<int64_t>() : nullptr, B};
  // Ragged: rows past a sequence's end keep zero gradients (the weight gradients sum over all rows).
  const auto options = d_output.options(), operands = w_hh.options();  // T, S
  auto make = [&](std::initializer_list<int64_t> shape, const at::TensorOptions& type) {
    return pool().get(shape, type, ragged);
  };

  Tensor da = make({steps, B, GH}, operands), dh_new = make({steps, B, P}, operands);
  Tensor dc_hat = make({steps, B, H}, options), dhh = ln_hh ? make({steps, B, GH}, operands) : da;
  Tensor dh = dh_T.clone(), dc = dc_T.clone();  // dL/dh_t, dL/dc_t carried back through time
  Tensor dh_total = at::empty({B, P}, options), dm = at::empty({B, H}, options);
  Tensor dh_new_t = std::is_same_v<S, T> ? Tensor() : at::empty({B, P}, options);  // a step's dh_new in T

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w);
  const T *mask_p = data_or_null<T>(mask), *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);
  const T *dout_p = d_output.data_ptr<T>(), *gi_p = gi.data_ptr<T>(), *gf_p = gf.data_ptr<T>();
  const T *gg_p = gg.data_ptr<T>(), *go_p = go.data_ptr<T>(), *tc_p = tanh_c.data_ptr<T>();
  const T* cp_p = c_prev.data_ptr<T>();
  const Panels<S> recurrent(w_hh.data_ptr<S>(), GH, P, P, 1, operands);  // W_hh (G*H, P)
  std::optional<Panels<S>> projection;                                   // W_hr (P, H)
  if (w_hr) projection.emplace(w_hr->data_ptr<S>(), P, H, H, 1, operands);
  const T* cnm_p = ln_c_w ? c_normed.data_ptr<T>() : nullptr;
  const T* cr_p = ln_c_w ? c_rstd.data_ptr<T>() : nullptr;
  const T* hn_p = ln_hh ? hh_normed.data_ptr<T>() : nullptr;
  const T* hr_p = ln_hh ? hh_rstd.data_ptr<T>() : nullptr;
  S *da_p = da.data_ptr<S>(), *dhh_p = dhh.data_ptr<S>(), *dhn_p = dh_new.data_ptr<S>();
  T *dch_p = dc_hat.data_ptr<T>(), *dh_p = dh.data_ptr<T>(), *dc_p = dc.data_ptr<T>();
  T *dt_p = dh_total.data_ptr<T>(), *dm_p = dm.data_ptr<T>();
  T* dn_scratch = dh_new_t.defined() ? dh_new_t.data_ptr<T>() : nullptr;
  const int threads = loop_threads(2.0 * B * GH * P);
  const bool peephole = w_cf.has_value();

  // layer norm: each thread's sums of da ⊙ hh_normed (G*H), dc_hat ⊙ c_normed (H) and dc_hat (H)
  Tensor ln_partial = ln_hh ? at::zeros({threads, GH + 2 * H}, options) : Tensor();
  T* lnp_p = ln_hh ? ln_partial.data_ptr<T>() : nullptr;

  in_parallel(threads, [&](int id, int count) {
    std::vector<T> dcn_row(H);  // one row's dL/dc̃ through the cell's layer norm
    std::vector<T> da_row(std::is_same_v<S, T> ? 0 : GH), dhh_row(std::is_same_v<S, T> ? 0 : GH);  // in T
    T* ln_sum = lnp_p ? lnp_p + id * (GH + 2 * H) : nullptr;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t n = active.at(t), s = t * BH;
      const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();
      const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
      const T* dout = dout_p + t * BP;
      S* dhn = dhn_p + t * BP;
      S* dat = da_p + t * B * GH;
      S* dhht = dhh_p + t * B * GH;
      const Span rows = share(n, id, count);
      T* dn = nullptr;  // dL/dh̃ (B, P) in T: dh_new's own rows when S is T
      if constexpr (std::is_same_v<S, T>) {
        dn = dhn;
      } else {
        dn = dn_scratch;
      }
      for (int64_t k = rows.begin * P; k < rows.end * P; ++k) {
        dt_p[k] = dh_p[k] + dout[k];        // this step's output share plus what step t+1 sent back
        dn[k] = dt_p[k] * (T(1) - kh[k]);  // h_t = k h_{t-1} + (1 - k) h̃_t
      }
      store_row(dn + rows.begin * P, dhn + rows.begin * P, (rows.end - rows.begin) * P);
      if (projection) {  // dL/dm = dh̃ · W_hr, split by columns of H
        barrier();
        projection->multiply(n, dhn, P, dm_p, H, share(projection->count(), id, count));
        barrier();
      }
      const T* dmt = projection ? dm_p : dn;  // dL/dm (without a projection m is h̃)
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        const int64_t r = b * H;
        const T *dmr = dmt + r, *o = go_p + s + r, *tc = tc_p + s + r;
        T* dch = dch_p + s + r;
        for (int64_t j = 0; j < H; ++j) dch[j] = dmr[j] * o[j] * (T(1) - tc[j] * tc[j]);  // dL/dĉ
        const T* dcn = dch;  // dL/dc̃ through the hidden path: dL/dĉ, or back through the cell's layer norm
        if (ln_cw_p) {       // (layer norm has ln_sum: the cell's gain and shift sums follow the hidden's)
          layer_norm_add_row_backward(dch, cnm_p + s + r, ln_cw_p, cr_p[t * B + b], H, dcn_row.data(), ln_sum + GH);
          for (int64_t j = 0; j < H; ++j) ln_sum[GH + H + j] += dch[j];
          dcn = dcn_row.data();
        }
        T* a = row_in(dat + b * GH, da_row);
        with_flag(coupled, [&](auto coupled_tag) {
          with_flag(peephole, [&](auto peephole_tag) {
            with_flag(keep_c_p != nullptr, [&](auto keep_tag) {
              gate_grads_row<T>(coupled_tag, peephole_tag, keep_tag, dmr, dcn, gi_p + s + r, gf_p + s + r,
                                gg_p + s + r, o, tc, cp_p + s + r, w_ci_p, w_cf_p, w_co_p, kc + r, H, a, dc_p + r);
            });
          });
        });
        store_row(a, dat + b * GH, GH);
        if (ln_hh_p) {
          T* dhh_b = row_in(dhht + b * GH, dhh_row);
          layer_norm_add_row_backward(a, hn_p + (t * B + b) * GH, ln_hh_p, hr_p[t * B + b], GH, dhh_b, ln_sum);
          store_row(dhh_b, dhht + b * GH, GH);
        }
      }
      barrier();
      // dL/dh_{t-1}: back through W_hh, split by columns of P
      const Span panels = share(recurrent.count(), id, count), pcols = recurrent.columns(panels);
      recurrent.multiply(n, dhht, GH, dh_p, P, panels);
      for (int64_t b = 0; b < n; ++b)
        for (int64_t j = pcols.begin; j < pcols.end; ++j) {
          const int64_t k = b * P + j;
          dh_p[k] = dh_p[k] * (mask_p ? mask_p[k] : T(1)) + (keep_h_p ? dt_p[k] * kh[k] : T(0));
        }
      barrier();
    }
    release_tiles<S>();
  });
  return {dh, dc,
          StepGrads{.da = da, .dhh = dhh, .dh_new = dh_new, .dc_hat = dc_hat,
                    .ln_totals = ln_hh ? ln_partial.sum(0) : Tensor()}};
}

}  // namespace lstmkit
