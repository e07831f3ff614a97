// One step through all layers at once, for streaming inference: no caches, one call per step.
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
#include "rows.h"
#include "threads.h"

namespace lstmkit {

// x (B, I); h (L, B, P), c (L, B, H); a StepLayer per layer (see lstm_cpu.h). Zoneout enters as its
// expectation (the keep probabilities), as in eval(). Returns the new h (L, B, P) and c (L, B, H).
// T and S as in forward.h: x, h and the weights in S (bf16: the weights VNNI-packed), c and the gates in T.
//
// At B = 1 a step streams every weight once: float and bf16 at one or two rows split the step over the
// threads by units (each thread multiplies the rows of its units of every gate, then runs their gate
// arithmetic), so that each thread's share of the weights stays in its own core's cache from step to step,
// and multiply the module's weights as they lie (rows_dot). bf16 at more rows: the same split, on the
// weights' VNNI copies. A barrier after each layer (and before a projection, which needs all of m). double,
// and float at more rows: one thread, whose BLAS products spread over ATen's threads themselves.
template <typename T, typename S>
std::tuple<Tensor, Tensor> step_impl(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h) {
  constexpr bool same = std::is_same_v<S, T>;
  constexpr int64_t kUnitBlock = 16;  // units per block of a thread's share (whole cache lines)
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2);
  const int64_t GH = layers[0].w_hh->size(0), G = GH / H;
  Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  const std::vector<T> keep_c(H, T(zoneout_c)), keep_h(P, T(zoneout_h)), zeros(4 * H, T(0));
  // Each layer's b_ih + b_hh and peepholes in T, read from the module's own (bf16 ones widened) at each step
  const auto in_gate_type = [](const OptTensor& t) -> std::vector<T> {  // empty where absent
    if (!t) return {};
    std::vector<T> values(t->numel());
    if (t->scalar_type() == at::kBFloat16) {
      std::copy_n(t->data_ptr<BF16>(), values.size(), values.begin());
    } else {
      std::copy_n(t->data_ptr<T>(), values.size(), values.begin());
    }
    return values;
  };
  struct GateTerms {
    std::vector<T> bias, w_ci, w_cf, w_co;
  };
  std::vector<GateTerms> terms(L);
  for (int64_t l = 0; l < L; ++l) {
    const StepLayer& w = layers[l];
    GateTerms& t = terms[l];
    t.bias.assign(GH, T(0));
    for (const OptTensor& bias : {w.bias_ih, w.bias_hh}) {
      const std::vector<T> b = in_gate_type(bias);
      for (size_t j = 0; j < b.size(); ++j) t.bias[j] += b[j];
    }
    t.w_ci = in_gate_type(w.w_ci), t.w_cf = in_gate_type(w.w_cf), t.w_co = in_gate_type(w.w_co);
  }
  const auto or_zeros = [&](const std::vector<T>& v) { return v.empty() ? zeros.data() : v.data(); };
  std::vector<T> a(B * GH), m(B * H), projected(B * P);  // shared: each thread writes its own columns
  std::vector<S> m_operand(same ? 0 : B * H);             // m as the projection's operand
  const bool split = !std::is_same_v<T, double> && B <= kUnpackedBatch;  // rows_dot on the module's weights
  const bool as_they_lie = same || split;                                  // (else bf16's VNNI copies)
  const int threads = split || !same ? loop_threads(2.0 * B * (x.size(1) + P) * GH) : 1;

  // out[b, rows] (+)= W[rows, :K] · V[b] for each row b of V (B, K), W's rows the module's
  const auto weights_times = [&](int64_t rows, int64_t K, const S* W, const S* V, int64_t ldv, T* out, int64_t ldo,
                                 bool add) {
    if (rows <= 0) return;
    if (split) {
      for (int64_t b = 0; b < B; ++b) rows_dot(rows, K, W, K, V + b * ldv, out + b * ldo, add);
    } else if constexpr (same) {
      aten_product(B, rows, K, V, ldv, W, 1, K, out, ldo, add);
    }
  };

  in_parallel(threads, [&](int id, int count) {
    std::vector<T> h_row(same ? 0 : P);  // a row of h_t in T before it is rounded into S
    std::vector<S> inputs;  // bf16: [x h] (B, I + P), each thread its own copy, a few hundred values
    const S* input = x.data_ptr<S>();
    int64_t input_size = x.size(1);
    const Span blocks = share((H + kUnitBlock - 1) / kUnitBlock, id, count);
    const int64_t u = std::min(H, blocks.begin * kUnitBlock), width = std::min(H, blocks.end * kUnitBlock) - u;
    const bool all_units = width == H;  // (one thread: all gates' rows in one product)
    for (int64_t l = 0; l < L; ++l) {
      const StepLayer& w = layers[l];
      const bool coupled = G == 3;
      const S* h_prev = h.data_ptr<S>() + l * B * P;
      const T* c_prev = c.data_ptr<T>() + l * B * H;
      S* h_new = h_out.data_ptr<S>() + l * B * P;
      T* c_new = c_out.data_ptr<T>() + l * B * H;
      // a[:, this thread's columns] = [x h] · [W_ih W_hh]^T
      for (int64_t q = 0; width > 0 && q < (all_units ? 1 : G); ++q) {
        const int64_t j = q * H + u, n = all_units ? GH : width;
        if (as_they_lie) {
          weights_times(n, input_size, w.w_ih->data_ptr<S>() + j * input_size, input, input_size, a.data() + j, GH,
                        false);
          weights_times(n, P, w.w_hh->data_ptr<S>() + j * P, h_prev, P, a.data() + j, GH, true);
        } else {  // one product on [x h] and the VNNI pairs (a column j of them is at 2 j)
          const int64_t K = input_size + P;
          if (q == 0) {
            inputs.resize(B * K);
            for (int64_t b = 0; b < B; ++b) {
              std::copy_n(input + b * input_size, input_size, inputs.data() + b * K);
              std::copy_n(h_prev + b * P, P, inputs.data() + b * K + input_size);
            }
          }
          gemm(B, n, K, inputs.data(), K, w.w_cat_vnni->data_ptr<S>() + 2 * j, GH, a.data() + j, GH, false);
        }
      }
      const T* bias = terms[l].bias.data();
      const T *w_ci = or_zeros(terms[l].w_ci), *w_cf = or_zeros(terms[l].w_cf), *w_co = or_zeros(terms[l].w_co);
      for (int64_t b = 0; width > 0 && b < B; ++b) {
        std::copy_n(c_prev + b * H + u, width, c_new + b * H + u);  // (cell_row updates c in place)
        with_flag(coupled, [&](auto coupled_tag) {
          with_flag(w.w_cf.has_value(), [&](auto peephole_tag) {
            with_flag(zoneout_c != 0, [&](auto keep_tag) {
              cell_row<T>(coupled_tag, peephole_tag, keep_tag, a.data() + b * GH + u, bias + u, w_ci + u, w_cf + u,
                          w_co + u, keep_c.data() + u, width, H, c_new + b * H + u, m.data() + b * H + u);
            });
          });
        });
      }
      Span columns{u, u + width};  // of h_t: this thread's units, or its share of P after a projection
      const T* h_tilde = m.data();
      if (w.w_hr) {  // h̃ = W_hr m, split by columns of P once all of m is there
        barrier();
        const S* m_s = nullptr;
        if constexpr (same) {
          m_s = m.data();
        } else {
          if (id == 0) round_to_bf16(m.data(), m_operand.data(), B * H);
          barrier();
          m_s = m_operand.data();
        }
        const Span pblocks = share((P + kUnitBlock - 1) / kUnitBlock, id, count);
        columns = {std::min(P, pblocks.begin * kUnitBlock), std::min(P, pblocks.end * kUnitBlock)};
        if (as_they_lie) {
          weights_times(columns.end - columns.begin, H, w.w_hr->data_ptr<S>() + columns.begin * H, m_s, H,
                        projected.data() + columns.begin, P, false);
        } else {
          gemm(B, columns.end - columns.begin, H, m_s, H, w.w_hr_vnni->data_ptr<S>() + 2 * columns.begin, P,
               projected.data() + columns.begin, P, false);
        }
        h_tilde = projected.data();
      }
      for (int64_t b = 0; b < B; ++b) {  // h_t = h̃ + k (h_prev - h̃), h̃ (B, P) (m itself: P = H)
        const int64_t n = columns.end - columns.begin, at = b * P + columns.begin;
        const S* hp = h_prev + at;
        T* h_t = row_in(h_new + at, h_row);
        for (int64_t k = 0; k < n; ++k) {
          const T v = h_tilde[at + k];
          h_t[k] = zoneout_h != 0 ? kept<true>(v, keep_h[columns.begin + k], T(hp[k])) : v;
        }
        store_row(h_t, h_new + at, n);
      }
      barrier();  // all of h_t before the next layer reads it
      input = h_new;
      input_size = P;
    }
    release_tiles<S>();  // (the bf16 products' AMX state: torch's own bf16 products may reset it before ours)
  });
  return {h_out, c_out};
}

}  // namespace lstmkit
