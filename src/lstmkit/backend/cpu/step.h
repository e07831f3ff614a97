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
#include "optional_tensors.h"
#include "rows.h"
#include "threads.h"

namespace lstmkit {

// x (B, I); h (L, B, P), c (L, B, H); a StepLayer per layer (see lstm_cpu.h). Zoneout enters as its
// expectation (the keep probabilities), as in eval(). Returns the new h (L, B, P) and c (L, B, H).
// T and S as in forward.h: x, h and the weights in S (bf16: the weights VNNI-packed), c and the gates in T.
//
// At B = 1 a step streams every weight once: the bf16 step is split over the threads by units (each thread
// multiplies the columns of its units of every gate, then runs their gate arithmetic), so that each
// thread's share of the weights stays in its own core's cache from step to step. A barrier after each layer
// (and before a projection, which needs all of m).
template <typename T, typename S>
std::tuple<Tensor, Tensor> step_impl(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const std::vector<StepLayer>& layers, double zoneout_c, double zoneout_h) {
  constexpr bool same = std::is_same_v<S, T>;
  constexpr int64_t kUnitBlock = 16;  // units per block of a thread's share (whole cache lines)
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2);
  Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  const std::vector<T> keep_c(H, T(zoneout_c)), keep_h(P, T(zoneout_h)), zeros(4 * H, T(0));
  const int64_t widest = std::max_element(layers.begin(), layers.end(), [](const StepLayer& p, const StepLayer& q) {
                           return p.w_cat_t.size(1) < q.w_cat_t.size(1);
                         })->w_cat_t.size(1);
  std::vector<T> a(B * widest), m(B * H), projected(B * P);  // shared: each thread writes its own columns
  std::vector<S> m_operand(same ? 0 : B * H);                 // m as the projection's operand
  const int64_t K0 = same ? layers[0].w_cat_t.size(0) : 2 * layers[0].w_cat_t.size(0);
  // float and double: one thread, whose products (the BLAS's, at one or two rows) spread over ATen's threads
  // themselves; bf16 products run on the calling thread, so the step splits them.
  const int threads = same ? 1 : loop_threads(2.0 * B * K0 * widest);

  in_parallel(threads, [&](int id, int count) {
    std::vector<T> h_row(same ? 0 : P);  // a row of h_t in T before it is rounded into S
    std::vector<S> inputs;  // [x h] (B, I + P): each thread its own copy, a few hundred values
    const S* input = x.data_ptr<S>();
    int64_t input_size = x.size(1);
    const Span blocks = share((H + kUnitBlock - 1) / kUnitBlock, id, count);
    const int64_t u = std::min(H, blocks.begin * kUnitBlock), width = std::min(H, blocks.end * kUnitBlock) - u;
    for (int64_t l = 0; l < L; ++l) {
      const StepLayer& w = layers[l];
      const Tensor& w_cat_t = w.w_cat_t;  // (K, G*H), or bf16 (K/2, G*H, 2)
      const int64_t GH = w_cat_t.size(1), G = GH / H;
      const bool coupled = G == 3;
      const S* h_prev = h.data_ptr<S>() + l * B * P;
      const T* c_prev = c.data_ptr<T>() + l * B * H;
      S* h_new = h_out.data_ptr<S>() + l * B * P;
      T* c_new = c_out.data_ptr<T>() + l * B * H;
      // a[:, this thread's columns] = [x h] · [W_ih W_hh]^T (a column j of the VNNI pairs is at 2 j)
      const int64_t K = input_size + P, column = same ? 1 : 2;
      inputs.resize(B * K);
      for (int64_t b = 0; b < B; ++b) {
        std::copy_n(input + b * input_size, input_size, inputs.data() + b * K);
        std::copy_n(h_prev + b * P, P, inputs.data() + b * K + input_size);
      }
      const S* weights = w_cat_t.data_ptr<S>();
      const bool all_units = width == H;  // (one thread: all gates' columns in one product)
      for (int64_t q = 0; width > 0 && q < (all_units ? 1 : G); ++q) {
        const int64_t j = q * H + u;
        gemm(B, all_units ? GH : width, K, inputs.data(), K, weights + j * column, GH, a.data() + j, GH, false);
      }
      const T* bias = w.bias ? w.bias->data_ptr<T>() : zeros.data();
      const T *w_ci = data_or_zeros<T>(w.w_ci, zeros), *w_cf = data_or_zeros<T>(w.w_cf, zeros);
      const T* w_co = data_or_zeros<T>(w.w_co, zeros);
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
      if (w.w_hr_t) {  // h̃ = W_hr m, split by columns of P once all of m is there
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
        gemm(B, columns.end - columns.begin, H, m_s, H, w.w_hr_t->data_ptr<S>() + columns.begin * column, P,
             projected.data() + columns.begin, P, false);
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
