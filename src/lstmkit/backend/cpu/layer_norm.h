// Layer norm: over one row inside the time loops (the recurrent product's, the cell's), and over every row
// of a matrix outside them (the input projection's), with the backward of each.
#pragma once

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace lstmkit {

constexpr double kLayerNormEps = 1e-5;

// A row's mean and 1 / sqrt(var + eps).
template <typename T>
std::pair<T, T> row_moments(const T* __restrict x, int64_t n) {
  T mean = 0, var = 0;
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= T(n);
  for (int64_t j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  return {mean, T(1) / std::sqrt(var / T(n) + T(kLayerNormEps))};
}

// normed = (x - mean) / sqrt(var + eps); returns 1 / sqrt(var + eps).
template <typename T>
T layer_norm_row(const T* __restrict x, T* __restrict normed, int64_t n) {
  const auto [mean, rstd] = row_moments(x, n);
  for (int64_t j = 0; j < n; ++j) normed[j] = (x[j] - mean) * rstd;
  return rstd;
}

// In place, a <- add + LN(a) ⊙ gain, normed = LN(a) = (a - mean) rstd; returns rstd (the recurrent product's
// layer norm in the forward loop).
template <typename T>
T layer_norm_add_row(T* __restrict a, const T* __restrict add, const T* __restrict gain, T* __restrict normed,
                     int64_t n) {
  const auto [mean, rstd] = row_moments(a, n);
  for (int64_t j = 0; j < n; ++j) {
    normed[j] = (a[j] - mean) * rstd;
    a[j] = add[j] + normed[j] * gain[j];
  }
  return rstd;
}

// Its backward from da = dL/da: d = dL/d(the row before the norm) = rstd (g - mean(g) - normed mean(g ⊙ normed))
// with g = dL/d(normed) = da ⊙ gain, and gain_sum += da ⊙ normed.
template <typename T>
void layer_norm_add_row_backward(const T* __restrict da, const T* __restrict normed, const T* __restrict gain, T rstd,
                                 int64_t n, T* __restrict d, T* __restrict gain_sum) {
  T mean_d = 0, mean_dn = 0;  // of dL/d(normed) = da ⊙ gain, and of it ⊙ normed
  for (int64_t j = 0; j < n; ++j) {
    gain_sum[j] += da[j] * normed[j];
    d[j] = da[j] * gain[j];
    mean_d += d[j];
    mean_dn += d[j] * normed[j];
  }
  mean_d /= T(n);
  mean_dn /= T(n);
  for (int64_t j = 0; j < n; ++j) d[j] = rstd * (d[j] - mean_d - normed[j] * mean_dn);
}

// Layer norm of every row of x (N, n), the input projection's, split over ATen's threads:
// y = (x - mean) * rstd ⊙ gain + bias?, stats (N, 2) = (mean, rstd).
template <typename T>
void layer_norm_rows(const T* x, const T* gain, const T* bias, int64_t N, int64_t n, T* y, T* stats) {
  at::parallel_for(0, N, 16, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      const auto [mean, rstd] = row_moments(xr, n);
      for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mean) * rstd * gain[j] + (bias ? bias[j] : T(0));
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  });
}

// Its backward from dL/dy (N, n): dx (N, n), and each thread's share of dL/dgain = Σ_rows dL/dy ⊙ normed
// added into its row of gain_partial (threads, n). Each row's normed = (x - mean) rstd is recomputed into a
// per-thread buffer, then layer_norm_add_row_backward does the rest (dL/dy is its da).
template <typename T>
void layer_norm_rows_backward(const T* d, const T* x, const T* stats, const T* gain, int64_t N, int64_t n, T* dx,
                              T* gain_partial) {
  at::parallel_for(0, N, 16, [&](int64_t first, int64_t last) {
    T* acc = gain_partial + at::get_thread_num() * n;
    std::vector<T> normed(n);
    for (int64_t r = first; r < last; ++r) {
      const T *xr = x + r * n, mean = stats[2 * r], rstd = stats[2 * r + 1];
      for (int64_t j = 0; j < n; ++j) normed[j] = (xr[j] - mean) * rstd;
      layer_norm_add_row_backward(d + r * n, normed.data(), gain, rstd, n, dx + r * n, acc);
    }
  });
}

}  // namespace lstmkit
