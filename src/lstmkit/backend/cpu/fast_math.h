// exp, tanh and the sigmoid of the gates: the C library's for double, inline polynomials for float.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace lstmkit {

// exp and tanh for the gates. double (the gradient checks): the C library's. float: inline polynomials that
// the compiler vectorises with the loop around them, about twice as fast as the vector math library's calls,
// within 5e-7 relative error of exact (3.2e-7 at most over [-20, 20]; tests/test_cpu_kernel.py checks them
// against float64).
template <typename T>
inline T fast_exp(T x) {
  return std::exp(x);
}

// e^x = 2^n e^r, x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, Cody-Waite), e^r by Cephes' expf
// polynomial, 2^n written into the exponent bits. The polynomial runs on x clamped to [-87, 88] (e^x a
// normal float); above 88.72, where expf overflows, the result is +inf, so that σ(-inf) is 0 as in torch
// (below -87, e^-87 keeps σ(+inf) at exactly 1); a NaN passes the comparison as false and stays NaN.
template <>
inline float fast_exp(float x_in) {
  const float x = std::min(std::max(x_in, -87.0f), 88.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float e = p * scale;
  return x_in > 88.72f ? std::numeric_limits<float>::infinity() : e;
}

template <typename T>
inline T fast_tanh(T x) {
  return std::tanh(x);
}

// tanh x = x P(x^2) / Q(x^2), a rational minimax fit on [-9, 9] (Eigen's float tanh); |x| >= 9 gives ±1
// exactly, as tanh rounds there (tests/test_non_finite.py: tanh' is then 0, as torch's), a NaN stays NaN.
template <>
inline float fast_tanh(float x_in) {
  const float x = std::min(std::max(x_in, -9.0f), 9.0f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

}  // namespace lstmkit
