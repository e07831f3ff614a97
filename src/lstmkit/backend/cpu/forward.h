// The forward time loop: T steps of lstmkit.functional.lstm_step, keeping every step's cache when recording.
// T is the arithmetic's type (float, double), S the products' operands' (T, or bf16 with T float): the
// weights, the input x, h (output, h_in) and m are S; the gates, the cell and the pre-activations are T.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
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
ForwardResult forward_impl(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                           const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                           const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& ln_c_b,
                           const OptTensor& mask, const OptTensor& keep_c, const OptTensor& keep_h,
                           const OptTensor& batch_sizes, bool record, const OptTensor& w_ih, const OptTensor& bias) {
  // With w_ih, x_gates is the input x (T, B, I) and each step projects its own x_t: a = x_t W_ih^T + bias +
  // W_hh h_in, one product per step with both weights (no (T, B, G*H) projection through memory).
  const int64_t steps = x_gates.size(0), B = x_gates.size(1), H = c0.size(1), P = h0.size(1);
  const int64_t GH = w_hh.size(0), BH = B * H, BP = B * P, I = x_gates.size(2);
  const bool coupled = GH == 3 * H, ragged = batch_sizes.has_value();
  const Active active{ragged ? batch_sizes->data_ptr<int64_t>() : nullptr, B};
  // Caches for every step when recording (training, traces), else one step's scratch reused (stride 0).
  // Ragged: rows past a sequence's end are never written, so they start at zero (finite in the sums of
  // the weight gradients, and the zero outputs padding needs).
  const int64_t cached = record ? steps : 1, stride = record ? 1 : 0;
  const auto options = c0.options(), operands = w_hh.options();  // T, S
  auto make = [&](std::initializer_list<int64_t> shape, const at::TensorOptions& type) {
    return pool().get(shape, type, ragged);
  };
  Tensor output = make({steps, B, P}, operands), h_in = make({cached, B, P}, operands);
  Tensor c_prev = make({cached, B, H}, options), gi = make({cached, B, H}, options);
  Tensor gf = make({cached, B, H}, options), gg = make({cached, B, H}, options);
  Tensor go = make({cached, B, H}, options), c_new = make({cached, B, H}, options);
  Tensor tanh_c = make({cached, B, H}, options), m = make({cached, B, H}, operands);
  Tensor hh_normed, hh_rstd, c_normed, c_rstd;
  if (ln_hh) hh_normed = make({cached, B, GH}, options), hh_rstd = make({cached, B, 1}, options);
  if (ln_c_w) c_normed = make({cached, B, H}, options), c_rstd = make({cached, B, 1}, options);
  Tensor hh = at::empty({B, GH}, options), c_cur = c0.clone();
  // W_hr m lands in T: in out itself when S is T, else here first (B, P)
  Tensor projected = w_hr && !std::is_same_v<S, T> ? at::empty({B, P}, options) : Tensor();
  const bool pack = B > kUnpackedBatch;  // a batch of one or two rows multiplies the weights as they lie
  const Panels<S> recurrent(w_hh.data_ptr<S>(), P, GH, 1, P, operands, pack);  // W_hh^T (P, G*H)
  std::optional<Panels<S>> projection, input;  // W_hr^T (H, P), W_ih^T (I, G*H)
  if (w_hr) projection.emplace(w_hr->data_ptr<S>(), H, P, 1, H, operands, pack);
  if (w_ih) input.emplace(w_ih->data_ptr<S>(), I, GH, 1, I, operands, pack);

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
  const T* bias_p = data_or_zeros<T>(bias, zeros);  // the x part of every row, projecting per step
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w), *ln_cb_p = data_or_null<T>(ln_c_b);
  const T *mask_p = data_or_null<T>(mask), *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);
  // x_gates is T, or with w_ih the input x, which is S
  const T* xg_p = input ? nullptr : x_gates.data_ptr<T>();
  const S *x_p = input ? x_gates.data_ptr<S>() : nullptr, *h0_p = h0.data_ptr<S>();
  S *out_p = output.data_ptr<S>(), *h_in_p = h_in.data_ptr<S>(), *m_p = m.data_ptr<S>();
  T *c_prev_p = c_prev.data_ptr<T>(), *gi_p = gi.data_ptr<T>(), *gf_p = gf.data_ptr<T>();
  T *gg_p = gg.data_ptr<T>(), *go_p = go.data_ptr<T>();
  T *cn_p = c_new.data_ptr<T>(), *tc_p = tanh_c.data_ptr<T>(), *cc = c_cur.data_ptr<T>();
  T *hn_p = ln_hh ? hh_normed.data_ptr<T>() : nullptr, *hr_p = ln_hh ? hh_rstd.data_ptr<T>() : nullptr;
  T *cnm_p = ln_c_w ? c_normed.data_ptr<T>() : nullptr, *cr_p = ln_c_w ? c_rstd.data_ptr<T>() : nullptr;
  T* hh_p = hh.data_ptr<T>();
  T* projected_p = projected.defined() ? projected.data_ptr<T>() : nullptr;

  // h_in = h ⊙ mask (or h) for rows [b0, b1) and columns [c0, c1) of (B, P) blocks; `row` a T scratch of P.
  auto carry_in = [&](const S* h, S* hin, int64_t b0, int64_t b1, int64_t c0, int64_t c1, std::vector<T>& row) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t at = b * P + c0, width = c1 - c0;
      if (!mask_p) {
        std::memcpy(hin + at, h + at, width * sizeof(S));
        continue;
      }
      T* masked = row_in(hin + at, row);
      for (int64_t j = 0; j < width; ++j) masked[j] = T(h[at + j]) * mask_p[at + j];
      store_row(masked, hin + at, width);
    }
  };
  const int threads = loop_threads(2.0 * B * GH * (P + (input ? I : 0)));
  const bool peephole = w_cf.has_value();
  // Inference without layer norm: each row's whole step in one pass (cell_row), nothing kept but c and m.
  const bool fused = !record && !ln_hh && !ln_c_w;
  // Inference without recurrent dropout: the products read h_{t-1} where it lies (the output), no h_in copy;
  // and without a projection or zoneout of h, m is written straight into the output (it is h_t).
  const bool direct = !record && !mask, m_is_h = !record && !w_hr && !keep_h;

  in_parallel(threads, [&](int id, int count) {
    const bool same = std::is_same_v<S, T>;
    std::vector<T> m_row(same ? 0 : H), h_row(same ? 0 : P);  // rows in T before they are rounded into S
    const Span first_rows = share(B, id, count);
    carry_in(h0_p, h_in_p, first_rows.begin, first_rows.end, 0, P, h_row);
    barrier();
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t n = active.at(t), c = t * stride;
      const S* h_prev = t == 0 ? h0_p : out_p + (t - 1) * BP;
      S* hin = h_in_p + c * BP;
      S* hin_next = h_in_p + (t + 1 < steps ? (t + 1) * stride : 0) * BP;
      T *cp = c_prev_p + c * BH, *pi = gi_p + c * BH, *pf = gf_p + c * BH, *pg = gg_p + c * BH;
      T *po = go_p + c * BH, *pcn = cn_p + c * BH, *ptc = tc_p + c * BH;
      S *pm = m_p + c * BH, *out = out_p + t * BP;
      const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
      const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();

      const Span panels = share(recurrent.count(), id, count);
      if (input) input->multiply(n, x_p + t * B * I, I, hh_p, GH, panels);   // x_t W_ih^T
      recurrent.multiply(n, direct ? h_prev : hin, P, hh_p, GH, panels, input.has_value());  // (+) W_hh h_in
      barrier();

      const Span rows = share(n, id, count);
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        T* a = hh_p + b * GH;  // becomes the pre-activations a = x_gates + LN_h(W_hh h_in)
        const T* x = input ? bias_p : xg_p + (t * B + b) * GH;
        const int64_t r = b * H;
        S* m_row_s = m_is_h ? out + b * P : pm + r;  // where m goes (P = H when it is h_t)
        T* m_t = row_in(m_row_s, m_row);
        if (fused) {
          with_flag(coupled, [&](auto coupled_tag) {
            with_flag(peephole, [&](auto peephole_tag) {
              with_flag(keep_c_p != nullptr, [&](auto keep_tag) {
                cell_row<T>(coupled_tag, peephole_tag, keep_tag, a, x, w_ci_p, w_cf_p, w_co_p, kc + r, H, H, cc + r,
                            m_t);
              });
            });
          });
        } else {
          std::memcpy(cp + r, cc + r, H * sizeof(T));
          if (ln_hh_p) {
            hr_p[c * B + b] = layer_norm_add_row(a, x, ln_hh_p, hn_p + (c * B + b) * GH, GH);
          } else {
            for (int64_t j = 0; j < GH; ++j) a[j] += x[j];
          }
          with_flag(coupled, [&](auto coupled_tag) {
            with_flag(peephole, [&](auto peephole_tag) {
              gates_row<T>(coupled_tag, peephole_tag, a, cp + r, w_ci_p, w_cf_p, H, pi + r, pf + r, pg + r, pcn + r);
            });
          });
          const T* c_hat = pcn + r;  // tanh's argument: c̃, or LN_c(c̃) written into the tanh_c row first
          if (ln_cw_p) {
            T* normed = cnm_p + c * BH + r;
            cr_p[c * B + b] = layer_norm_row(pcn + r, normed, H);
            for (int64_t j = 0; j < H; ++j) ptc[r + j] = normed[j] * ln_cw_p[j] + ln_cb_p[j];
            c_hat = ptc + r;
          }
          with_flag(peephole, [&](auto peephole_tag) {
            with_flag(keep_c_p != nullptr, [&](auto keep_tag) {
              output_row<T>(peephole_tag, keep_tag, a + GH - H, pcn + r, c_hat, cp + r, w_co_p, kc + r, H, po + r,
                            ptc + r, m_t, cc + r);
            });
          });
          if (record && t + 1 < steps && b >= active.at(t + 1)) {  // a sequence's last step: its c_t is
            std::memcpy(cp + BH + r, cc + r, H * sizeof(T));        // read as the next step's c_prev (trace)
          }
        }
        store_row(m_t, m_row_s, H);
        if (!projection && !m_is_h) {  // h_t = m + k (h_prev - m)
          S* h = out + b * P;
          if (keep_h_p) {
            T* h_t = row_in(h, h_row);
            const S* hp = h_prev + b * P;
            const T* k = kh + b * P;
            for (int64_t j = 0; j < P; ++j) h_t[j] = kept<true>(m_t[j], k[j], T(hp[j]));
            store_row(h_t, h, P);
          } else {
            std::memcpy(h, pm + r, P * sizeof(S));
          }
        }
        if (!projection && !direct && t + 1 < steps) carry_in(out, hin_next, b, b + 1, 0, P, h_row);
      }
      if (projection) {  // h̃ = W_hr m, split by columns of P
        barrier();
        const Span panels = share(projection->count(), id, count), pcols = projection->columns(panels);
        T* landed = nullptr;  // W_hr m (B, P) in T
        if constexpr (std::is_same_v<S, T>) {
          landed = out;
        } else {
          landed = projected_p;
        }
        projection->multiply(n, pm, H, landed, P, panels);
        for (int64_t b = 0; b < n; ++b) {
          const int64_t at = b * P + pcols.begin;
          if (keep_h_p) {
            for (int64_t k = at; k < b * P + pcols.end; ++k) landed[k] = kept<true>(landed[k], kh[k], T(h_prev[k]));
          }
          store_row(landed + at, out + at, pcols.end - pcols.begin);
        }
        if (!direct && t + 1 < steps) carry_in(out, hin_next, 0, n, pcols.begin, pcols.end, h_row);
      }
      barrier();
    }
    release_tiles<S>();
  });

  // h_T of each row: its last active step's output.
  Tensor h_T = at::empty({B, P}, operands);
  for (int64_t b = 0, t = steps - 1; b < B; ++b) {
    while (t > 0 && active.at(t) <= b) --t;
    std::memcpy(h_T.data_ptr<S>() + b * P, out_p + (t * B + b) * P, P * sizeof(S));
  }
  if (!record) return {output, h_T, c_cur, std::nullopt};
  return {output, h_T, c_cur,
          StepCache{.h_in = h_in, .c_prev = c_prev, .i = gi, .f = gf, .g = gg, .o = go, .c_new = c_new,
                    .tanh_c = tanh_c, .m = m, .hh_normed = hh_normed, .hh_rstd = hh_rstd, .c_normed = c_normed,
                    .c_rstd = c_rstd}};
}

}  // namespace lstmkit
