// One step through all layers at once, for streaming inference: no caches, no threads, one call per step.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "bf16_rows.h"
#include "gemm.h"
#include "lstm_cpu.h"
#include "optional_tensors.h"
#include "rows.h"

namespace lstmkit {

// x (B, I); h (L, B, P), c (L, B, H); a StepLayer per layer (see lstm_cpu.h). Zoneout enters as its
// expectation (the keep probabilities), as in eval(). Returns the new h (L, B, P) and c (L, B, H).
// T and S as in forward.h: x, h and the weights in S (bf16: the weights VNNI-packed), c and the gates in T.
template <typename T, typename S>
std::tuple<Tensor, Tensor> step_impl(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h) {
  constexpr bool same = std::is_same_v<S, T>;
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2);
  Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  std::vector<T> keep_c(H, T(zoneout_c)), keep_h(P, T(zoneout_h)), zeros(H, T(0)), a, gates(7 * H);
  std::vector<T> projected(P), h_row(P);
  std::vector<S> inputs, m_operand(same ? 0 : H);  // [x h] and m as the products' operands
  const S* input = x.data_ptr<S>();
  int64_t input_size = x.size(1);
  for (int64_t l = 0; l < L; ++l) {
    const StepLayer& w = layers[l];
    const Tensor& w_cat_t = w.w_cat_t;  // (K, G*H), or bf16 (K/2, G*H, 2)
    const int64_t GH = w_cat_t.size(1), K = same ? w_cat_t.size(0) : 2 * w_cat_t.size(0);
    const bool coupled = GH == 3 * H;
    const S *h_prev = h.data_ptr<S>() + l * B * P;
    const T* c_prev = c.data_ptr<T>() + l * B * H;
    S* h_new = h_out.data_ptr<S>() + l * B * P;
    T* c_new = c_out.data_ptr<T>() + l * B * H;
    inputs.resize(B * K);
    a.resize(B * GH);
    for (int64_t b = 0; b < B; ++b) {  // [x_b, h_b] and the bias, then a = [x h] · [W_ih W_hh]^T + bias
      std::copy_n(input + b * input_size, input_size, inputs.data() + b * K);
      std::copy_n(h_prev + b * P, P, inputs.data() + b * K + input_size);
      if (w.bias) std::copy_n(w.bias->data_ptr<T>(), GH, a.data() + b * GH);
    }
    gemm(B, GH, K, inputs.data(), K, w_cat_t.data_ptr<S>(), GH, a.data(), GH, w.bias.has_value());
    const T *w_ci = data_or_zeros<T>(w.w_ci, zeros), *w_cf = data_or_zeros<T>(w.w_cf, zeros);
    const T* w_co = data_or_zeros<T>(w.w_co, zeros);
    T *i = gates.data(), *f = i + H, *g = f + H, *cn = g + H, *o = cn + H, *tc = o + H, *m = tc + H;
    for (int64_t b = 0; b < B; ++b) {
      const T* ab = a.data() + b * GH;
      const T* cp = c_prev + b * H;
      const S* hp = h_prev + b * P;
      with_flag(w.w_cf.has_value(), [&](auto peephole_tag) {
        with_flag(coupled, [&](auto coupled_tag) {
          gates_row<T>(coupled_tag, peephole_tag, ab, cp, w_ci, w_cf, H, i, f, g, cn);
        });
        with_flag(zoneout_c != 0, [&](auto keep_tag) {
          output_row<T>(peephole_tag, keep_tag, ab + GH - H, cn, cn, cp, w_co, keep_c.data(), H, o, tc, m,
                        c_new + b * H);
        });
      });
      const T* h_tilde = m;
      if (w.w_hr_t) {  // h̃ = W_hr m
        const S* m_s = nullptr;
        if constexpr (same) {
          m_s = m;
        } else {
          round_to_bf16(m, m_operand.data(), H);
          m_s = m_operand.data();
        }
        gemm(1, P, H, m_s, H, w.w_hr_t->data_ptr<S>(), P, projected.data(), P, false);
        h_tilde = projected.data();
      }
      for (int64_t j = 0; j < P; ++j) {
        h_row[j] = zoneout_h != 0 ? kept<true>(h_tilde[j], keep_h[j], T(hp[j])) : h_tilde[j];
      }
      if constexpr (same) {
        std::copy_n(h_row.data(), P, h_new + b * P);
      } else {
        round_to_bf16(h_row.data(), h_new + b * P, P);
      }
    }
    input = h_new;
    input_size = P;
  }
  release_tiles<S>();  // (the bf16 products' AMX state: torch's own bf16 products may reset it before our next)
  return {h_out, c_out};
}

}  // namespace lstmkit
