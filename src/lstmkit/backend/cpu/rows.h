// The fused per-row gate arithmetic of one step: the forward's gates and output, the backward's gradients.
// Each is one loop over H that the compiler vectorises, without branches: the variants are template flags
// (std::bool_constant tags, chosen at run time by with_flag), so an absent peephole or keep factor adds no
// term at all. A term 0 · x would turn an infinite state into NaN where torch.nn.LSTM has no such term.
#pragma once

#include <cstdint>
#include <type_traits>

#include "fast_math.h"

namespace lstmkit {

// f(std::true_type{}) or f(std::false_type{}): a run-time flag as a compile-time tag.
template <typename F>
inline void with_flag(bool flag, F&& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// w ⊙ c with a peephole, else no term; x + k (y - x) with keep factors (zoneout, padding), else x.
template <bool Peephole, typename T>
inline T peep(T w, T c) {
  return Peephole ? w * c : T(0);
}
template <bool Keep, typename T>
inline T kept(T x, T k, T y) {
  return Keep ? x + k * (y - x) : x;
}

// ---- forward rows --------------------------------------------------------------------------------------
// The forward's equations once, per unit (Gates, output_gate), and the loops over a row that use them.

template <typename T>
struct Gates {
  T i, f, g, c_new;  // c̃ = f ⊙ c_prev + i ⊙ g
};

// One unit's input, forget and candidate gates and c̃ from its pre-activations a_i, a_f, a_g.
template <bool Coupled, bool Peephole, typename T>
inline Gates<T> gates_at(T a_i, T a_f, T a_g, T c_prev, T w_ci, T w_cf) {
  const T f = sigmoid(a_f + peep<Peephole>(w_cf, c_prev));
  const T i = Coupled ? T(1) - f : sigmoid(a_i + peep<Peephole>(w_ci, c_prev));
  const T g = fast_tanh(a_g);
  return {i, f, g, f * c_prev + i * g};
}

// One unit's output gate (its peephole looks at c̃).
template <bool Peephole, typename T>
inline T output_gate(T a_o, T c_new, T w_co) {
  return sigmoid(a_o + peep<Peephole>(w_co, c_new));
}

// i, f, g and c̃ for one row, each stored (the cache); a points at the G*H pre-activations.
template <typename T, bool Coupled, bool Peephole>
void gates_row(std::bool_constant<Coupled>, std::bool_constant<Peephole>, const T* __restrict a,
               const T* __restrict c_prev, const T* __restrict w_ci, const T* __restrict w_cf, int64_t H,
               T* __restrict i_out, T* __restrict f_out, T* __restrict g_out, T* __restrict c_new) {
  const T* a_f = Coupled ? a : a + H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const Gates<T> u = gates_at<Coupled, Peephole>(a[j], a_f[j], a_f[H + j], c_prev[j], w_ci[j], w_cf[j]);
    i_out[j] = u.i;
    f_out[j] = u.f;
    g_out[j] = u.g;
    c_new[j] = u.c_new;
  }
}

// o, tanh(ĉ), m = o ⊙ tanh(ĉ) and the carried cell c_t = c̃ + k (c_prev - c̃) for one row.
template <typename T, bool Peephole, bool Keep>
void output_row(std::bool_constant<Peephole>, std::bool_constant<Keep>, const T* __restrict a_o,
                const T* __restrict c_new, const T* __restrict c_hat, const T* __restrict c_prev,
                const T* __restrict w_co, const T* __restrict keep_c, int64_t H, T* __restrict o_out,
                T* __restrict tanh_out, T* __restrict m_out, T* __restrict c_out) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T o = output_gate<Peephole>(a_o[j], c_new[j], w_co[j]);
    const T tc = fast_tanh(c_hat[j]);
    o_out[j] = o;
    tanh_out[j] = tc;
    m_out[j] = o * tc;
    c_out[j] = kept<Keep>(c_new[j], keep_c[j], c_prev[j]);
  }
}

// The whole step of `units` units of one row in one pass, keeping nothing (inference without layer norm):
// the pre-activations a + x (the product and the input's share, or the bias; each gate `stride` apart: H in
// a row of G*H), then c (c_prev in, c_t out) and m.
template <typename T, bool Coupled, bool Peephole, bool Keep>
void cell_row(std::bool_constant<Coupled>, std::bool_constant<Peephole>, std::bool_constant<Keep>,
              const T* __restrict a, const T* __restrict x, const T* __restrict w_ci, const T* __restrict w_cf,
              const T* __restrict w_co, const T* __restrict keep_c, int64_t units, int64_t stride,
              T* __restrict c, T* __restrict m_out) {
  constexpr int64_t G = Coupled ? 3 : 4;
  const T* a_f = Coupled ? a : a + stride;  // the gates' rows: i (absent when coupled), f, g, o
  const T* x_f = Coupled ? x : x + stride;
  const T *a_o = a + (G - 1) * stride, *x_o = x + (G - 1) * stride;
#pragma omp simd
  for (int64_t j = 0; j < units; ++j) {
    const T c_prev = c[j];
    const T a_i = Coupled ? T(0) : a[j] + x[j];
    const Gates<T> u = gates_at<Coupled, Peephole>(a_i, a_f[j] + x_f[j], a_f[stride + j] + x_f[stride + j], c_prev,
                                                   w_ci[j], w_cf[j]);
    const T o = output_gate<Peephole>(a_o[j] + x_o[j], u.c_new, w_co[j]);
    m_out[j] = o * fast_tanh(u.c_new);
    c[j] = kept<Keep>(u.c_new, keep_c[j], c_prev);
  }
}

// ---- backward rows -------------------------------------------------------------------------------------

// From dL/dm (m = o ⊙ tanh(ĉ)) and dL/dc_t: the four pre-activation gradients da and dL/dc_{t-1}.
// dc_hat receives dL/dĉ; dcn holds dL/dc̃ from the hidden path (after the cell's layer norm, if any).
template <typename T, bool Coupled, bool Peephole, bool Keep>
void gate_grads_row(std::bool_constant<Coupled>, std::bool_constant<Peephole>, std::bool_constant<Keep>,
                    const T* __restrict dm, const T* __restrict dcn, const T* __restrict i,
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
    const T dc_new = (Keep ? dc_t * (T(1) - keep_c[j]) : dc_t) + dcn[j] + peep<Peephole>(d_o, w_co[j]);
    const T di = dc_new * g[j];
    const T df = dc_new * c_prev[j];
    const T d_i = di * i[j] * (T(1) - i[j]);
    const T d_f = (Coupled ? df - di : df) * f[j] * (T(1) - f[j]);  // coupled: i = 1 - f
    // With coupled gates da_i aliases da_f: the second store wins, and w_ci is not read.
    da_i[j] = d_i;
    da_f[j] = d_f;
    da_g[j] = dc_new * i[j] * (T(1) - g[j] * g[j]);
    da_o[j] = d_o;
    dc[j] = dc_new * f[j] + (Keep ? dc_t * keep_c[j] : T(0)) + (Coupled ? T(0) : peep<Peephole>(d_i, w_ci[j])) +
            peep<Peephole>(d_f, w_cf[j]);
  }
}

}  // namespace lstmkit
