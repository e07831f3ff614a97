// One step through all layers at once, for streaming inference: no caches, no threads, one call per step.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "gemm.h"
#include "lstm_cpu.h"
#include "optional_tensors.h"
#include "rows.h"

namespace lstmkit {

// x (B, I); h (L, B, P), c (L, B, H); a StepLayer per layer (see lstm_cpu.h). Zoneout enters as its
// expectation (the keep probabilities), as in eval(). Returns the new h (L, B, P) and c (L, B, H).
template <typename T>
std::tuple<Tensor, Tensor> step_impl(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h) {
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2);
  Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  std::vector<T> keep_c(H, T(zoneout_c)), keep_h(P, T(zoneout_h)), zeros(H, T(0)), inputs, a, gates(7 * H);
  std::vector<T> projected(P);
  const T* input = x.data_ptr<T>();
  int64_t input_size = x.size(1);
  for (int64_t l = 0; l < L; ++l) {
    const StepLayer& w = layers[l];
    const Tensor& w_cat_t = w.w_cat_t;
    const int64_t K = w_cat_t.size(0), GH = w_cat_t.size(1);
    const bool coupled = GH == 3 * H;
    const T *h_prev = h.data_ptr<T>() + l * B * P, *c_prev = c.data_ptr<T>() + l * B * H;
    T *h_new = h_out.data_ptr<T>() + l * B * P, *c_new = c_out.data_ptr<T>() + l * B * H;
    inputs.resize(B * K);
    a.resize(B * GH);
    for (int64_t b = 0; b < B; ++b) {  // [x_b, h_b] and the bias, then a = [x h] · [W_ih W_hh]^T + bias
      std::copy_n(input + b * input_size, input_size, inputs.data() + b * K);
      std::copy_n(h_prev + b * P, P, inputs.data() + b * K + input_size);
      if (w.bias) std::copy_n(w.bias->data_ptr<T>(), GH, a.data() + b * GH);
    }
    gemm<T>(B, GH, K, inputs.data(), K, w_cat_t.data_ptr<T>(), GH, a.data(), GH, w.bias.has_value());
    const T *w_ci = data_or_zeros<T>(w.w_ci, zeros), *w_cf = data_or_zeros<T>(w.w_cf, zeros);
    const T* w_co = data_or_zeros<T>(w.w_co, zeros);
    T *i = gates.data(), *f = i + H, *g = f + H, *cn = g + H, *o = cn + H, *tc = o + H, *m = tc + H;
    for (int64_t b = 0; b < B; ++b) {
      const T* ab = a.data() + b * GH;
      const T *cp = c_prev + b * H, *hp = h_prev + b * P;
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
        gemm<T>(1, P, H, m, H, w.w_hr_t->data_ptr<T>(), P, projected.data(), P, false);
        h_tilde = projected.data();
      }
      for (int64_t j = 0; j < P; ++j) {
        h_new[b * P + j] = zoneout_h != 0 ? kept<true>(h_tilde[j], keep_h[j], hp[j]) : h_tilde[j];
      }
    }
    input = h_new;
    input_size = P;
  }
  return {h_out, c_out};
}

}  // namespace lstmkit
