// Rows in the loops' operand type S (bf16 in the bf16 loops): the arithmetic runs on a row in T and rounds
// it into S once, vectorised (AVX512-BF16's conversion where the compiler targets it).
#pragma once

#include <c10/util/BFloat16.h>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <type_traits>
#include <vector>

namespace lstmkit {

// dst[0:n] = src[0:n] rounded to bf16 (to nearest, ties to even, as c10::BFloat16's constructor).
inline void round_to_bf16(const float* __restrict src, c10::BFloat16* __restrict dst, int64_t n) {
  int64_t j = 0;
#if defined(__AVX512BF16__)
  for (; j + 16 <= n; j += 16) {
    const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), reinterpret_cast<const __m256i&>(rounded));
  }
#endif
  for (; j < n; ++j) dst[j] = c10::BFloat16(src[j]);
}

// The T row to compute a row of S in: the S row itself when S is T, else the scratch row.
template <typename T, typename S>
T* row_in(S* row, std::vector<T>& scratch) {
  if constexpr (std::is_same_v<S, T>) {
    return row;
  } else {
    return scratch.data();
  }
}

// The T row from row_in into its S row: nothing to do when S is T (it was the row), else rounded.
template <typename T, typename S>
void store_row(const T* from, S* row, int64_t n) {
  if constexpr (!std::is_same_v<S, T>) round_to_bf16(from, row, n);
}

}  // namespace lstmkit
