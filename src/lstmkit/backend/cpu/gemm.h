// Matrix products: one thread's GEMM, a fixed weight packed in panels, the tiled product of large operands
// over ATen's threads, and a cache-blocked transpose. Operands S are float, double or bfloat16; a product
// of bfloat16 operands accumulates and lands in float (Acc<S>), by the CPU's bf16 dot-product instructions
// (AMX tiles or AVX512-BF16, oneDNN's micro-kernel picks; see has_bf16_products) on weights packed in VNNI
// pairs.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "buffer_pool.h"
#include "threads.h"

namespace lstmkit {

constexpr int64_t kUnpackedBatch = 2;  // up to this many rows, products go to the BLAS (see Panels)

using BF16 = at::BFloat16;
template <typename S>
constexpr bool kVnni = std::is_same_v<S, BF16>;  // bf16 operands: packed in VNNI pairs of rows
template <typename S>
using Acc = std::conditional_t<kVnni<S>, float, S>;  // the type a product of S operands lands in

// Whether this CPU multiplies bf16 operands: AMX tiles (where ATen packs bf16) or AVX512-BF16's dot products
// (an AMD EPYC's, a Xeon's before AMX), on which oneDNN's micro-kernel reads the same VNNI pairs. A CPU with
// neither would run emulated bf16 products slower than float32's, so the bf16 loops run only where it has
// one; and only where a small product through the micro-kernel comes out right (it refuses VNNI operands
// where oneDNN is switched off or capped below AVX-512).
inline bool multiplies_bf16_correctly() {
  try {
    constexpr int64_t K = 4, N = 2;  // A (1, K) = 1..4, B (K, N) in VNNI pairs: column 0 = 1, column 1 = k
    const float a[K] = {1, 2, 3, 4}, b[K][N] = {{1, 0}, {1, 1}, {1, 2}, {1, 3}};
    BF16 A[K], B[K * N];
    for (int64_t k = 0; k < K; ++k) {
      A[k] = a[k];
      for (int64_t j = 0; j < N; ++j) B[(k / 2) * 2 * N + 2 * j + k % 2] = b[k][j];
    }
    float C[N] = {0, 0};
    at::native::cpublas::brgemm(1, N, K, K, N, N, /*add_C=*/false, A, B, C, /*is_vnni=*/true);
    at::native::cpublas::brgemm_release(/*is_vnni=*/true);
    return C[0] == 10 && C[1] == 20;
  } catch (const c10::Error&) {
    return false;
  }
}

inline bool has_bf16_products() {
  static const bool answer = [] {
    bool native = at::native::cpublas::could_pack(at::kBFloat16);  // AMX
#if defined(__x86_64__) && defined(__GNUC__)
    native = native || __builtin_cpu_supports("avx512bf16");
#endif
    return native && multiplies_bf16_correctly();
  }();
  return answer;
}

// The AMX tile state a thread's bf16 products configured, handed back when its loop is done.
template <typename S>
void release_tiles() {
  if constexpr (kVnni<S>) at::native::cpublas::brgemm_release(/*is_vnni=*/true);
}

// C (M, N) = A (M, K) · B (K, N) (+ C when `add`) by ATen's matrix product (the BLAS) on views of the same
// memory: A and C row-major with leading dimensions, element (k, j) of B at B[k * b_row + j * b_col].
template <typename T>
void aten_product(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t b_row,
                  int64_t b_col, T* C, int64_t ldc, bool add) {
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  const Tensor a = at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, options);
  const Tensor b = at::from_blob(const_cast<T*>(B), {K, N}, {b_row, b_col}, options);
  Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, options);
  if (add) {
    c.addmm_(a, b);
  } else {
    at::mm_out(c, a, b);
  }
}

// C (M, N) = A (M, K) · B (K, N) (+ C when `add`), row-major with leading dimensions, on this thread.
// float: oneDNN's batch-reduce GEMM micro-kernel through ATen (generated once per shape and cached; on
// CPUs where the BLAS takes a generic path it is several times faster), from kUnpackedBatch + 1 rows: at
// one or two rows it is several times slower than the BLAS's matrix-vector product. double (the gradient
// checks) and those few rows: ATen's matrix product on views of the same memory.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
          bool add) {
  if (M <= 0 || N <= 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (M > kUnpackedBatch) {
      at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, A, B, C, /*is_vnni=*/false);
      return;
    }
  }
  aten_product(M, N, K, A, lda, B, ldb, 1, C, ldc, add);
}

// bf16: B in VNNI pairs (element (k, j) at B[(k / 2) * 2 * ldb + 2 * j + k % 2]), K even, C in float.
inline void gemm(int64_t M, int64_t N, int64_t K, const BF16* A, int64_t lda, const BF16* B, int64_t ldb, float* C,
                 int64_t ldc, bool add) {
  if (M <= 0 || N <= 0) return;
  at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, A, B, C, /*is_vnni=*/true);
}

// out[r] (+)= W[r, :K] · v for the rows r of [0, R), W row-major (rows ld apart), on this thread: the
// matrix-vector product of one streaming step, reading the weights as they lie, row after contiguous row,
// four rows at a time (the dot products of a row vectorised, reduced once per row).
template <typename T>
void rows_dot(int64_t R, int64_t K, const T* W, int64_t ld, const T* v, T* out, bool add) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    const T *w0 = W + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < K; ++k) {
      s0 += w0[k] * v[k], s1 += w1[k] * v[k], s2 += w2[k] * v[k], s3 += w3[k] * v[k];
    }
    out[r] = (add ? out[r] : T(0)) + s0, out[r + 1] = (add ? out[r + 1] : T(0)) + s1;
    out[r + 2] = (add ? out[r + 2] : T(0)) + s2, out[r + 3] = (add ? out[r + 3] : T(0)) + s3;
  }
  for (; r < R; ++r) {
    const T* w = W + r * ld;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < K; ++k) s += w[k] * v[k];
    out[r] = (add ? out[r] : T(0)) + s;
  }
}

// bf16: out[r] (+)= W[r, :K] · v in float, W and v bf16 as they lie (any K): AVX512-BF16's dot products of
// pairs where the CPU has them (a masked load pairs an odd tail with zeros), else each value widened.
inline void rows_dot(int64_t R, int64_t K, const BF16* W, int64_t ld, const BF16* v, float* out, bool add) {
#if defined(__AVX512BF16__)
  const auto load = [K](const BF16* p, int64_t k) {  // 32 values from k, zeros past K
    const __mmask32 inside = K - k >= 32 ? ~__mmask32(0) : (__mmask32(1) << (K - k)) - 1;
    return (__m512bh)_mm512_maskz_loadu_epi16(inside, p + k);
  };
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    const BF16 *w0 = W + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t k = 0; k < K; k += 32) {
      const __m512bh x = load(v, k);
      s0 = _mm512_dpbf16_ps(s0, load(w0, k), x), s1 = _mm512_dpbf16_ps(s1, load(w1, k), x);
      s2 = _mm512_dpbf16_ps(s2, load(w2, k), x), s3 = _mm512_dpbf16_ps(s3, load(w3, k), x);
    }
    const float sums[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2),
                           _mm512_reduce_add_ps(s3)};
    for (int i = 0; i < 4; ++i) out[r + i] = (add ? out[r + i] : 0.f) + sums[i];
  }
  for (; r < R; ++r) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) s = _mm512_dpbf16_ps(s, load(W + r * ld, k), load(v, k));
    out[r] = (add ? out[r] : 0.f) + _mm512_reduce_add_ps(s);
  }
#else
  for (int64_t r = 0; r < R; ++r) {
    const BF16* w = W + r * ld;
    float s = 0;
    for (int64_t k = 0; k < K; ++k) s += float(w[k]) * float(v[k]);
    out[r] = (add ? out[r] : 0.f) + s;
  }
#endif
}

// ---- a fixed weight in panels ----------------------------------------------------------------------------

// B (K, N) repacked into panels of kWidth columns, each panel (K, kWidth) contiguous: the micro-kernel
// streams each panel in order, at nearly its full speed, where the strided rows of a whole (K, N) matrix
// stall it (up to 2x at small batches). The time loops pack their weights once per call, the large products
// their right operand. Element (k, j) of B is src[k * row_stride + j * col_stride], so a weight and its
// transpose pack without a copy first. Packing is split over ATen's threads (call it outside the loops).
//
// bf16 panels are in VNNI pairs of rows (the layout the bf16 dot products read), K rounded up to even with a
// zero row; an A with odd K then needs a zero column K (lda > K) too, for the product reads it.
//
// With `pack` false and B the transpose of a row-major weight W (N, K) (row_stride 1, col_stride K), nothing is
// copied: the product is the BLAS's on W^T as a view, streaming W as it lies. At a batch of one or two rows
// that is faster per step than the micro-kernel, and it saves the packing, which at a few steps (a one-step
// call, streaming) costs several times the products themselves.
template <typename T>
class Panels {
 public:
  static constexpr int64_t kWidth = 64;
  using Out = Acc<T>;  // what the products land in

  Panels(const T* src, int64_t K, int64_t N, int64_t row_stride, int64_t col_stride, const at::TensorOptions& opt,
         bool pack = true)
      : K_(K), depth_(kVnni<T> ? K + K % 2 : K), N_(N), count_((N + kWidth - 1) / kWidth) {
    if (!kVnni<T> && !pack && row_stride == 1) {
      rows_ = src, row_ld_ = col_stride;
      return;
    }
    buffer_ = pool().get({count_ * depth_ * kWidth}, opt, /*zeroed=*/N % kWidth != 0 || depth_ != K);
    T* out = buffer_.data_ptr<T>();
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, K * kWidth));  // small: one thread
    at::parallel_for(0, count_, grain, [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) {  // read along src's contiguous direction
        const T* from = src + p * kWidth * col_stride;
        T* to = out + p * depth_ * kWidth;
        if constexpr (kVnni<T>) {  // (k, j) -> (k / 2, j, k % 2), as 16-bit words
          const auto* in = reinterpret_cast<const uint16_t*>(from);
          auto* pairs = reinterpret_cast<uint16_t*>(to);
          const int64_t w = width(p);
          if (col_stride == 1) {  // two rows at a time, a 32-bit word per column (an odd K's last row
            for (int64_t k = 0; k < K; k += 2) {  // pairs with zeros)
              const uint16_t *r0 = in + k * row_stride, *r1 = k + 1 < K ? r0 + row_stride : nullptr;
              auto* d = reinterpret_cast<uint32_t*>(pairs + k * kWidth);
              if (r1) {
                for (int64_t j = 0; j < w; ++j) d[j] = uint32_t(r0[j]) | uint32_t(r1[j]) << 16;
              } else {
                for (int64_t j = 0; j < w; ++j) d[j] = uint32_t(r0[j]);
              }
            }
          } else if (row_stride == 1) {  // a transpose: a pair (k, k + 1) of column j is one 32-bit word of
            constexpr int64_t kBlock = 32;  // the source; in blocks of kBlock pairs that stay in L1
            auto* d = reinterpret_cast<uint32_t*>(pairs);
            const int64_t whole = K / 2;
            for (int64_t q0 = 0; q0 < whole; q0 += kBlock) {
              const int64_t q1 = std::min(whole, q0 + kBlock);
              for (int64_t j = 0; j < w; ++j)
                for (int64_t q = q0; q < q1; ++q) std::memcpy(d + q * kWidth + j, in + j * col_stride + 2 * q, 4);
            }
            if (K % 2) {  // the last row, beside the zero row
              for (int64_t j = 0; j < w; ++j) pairs[(K - 1) * kWidth + 2 * j] = in[j * col_stride + K - 1];
            }
          } else {
            for (int64_t j = 0; j < w; ++j)
              for (int64_t k = 0; k < K; ++k) {
                pairs[(k / 2) * 2 * kWidth + 2 * j + k % 2] = in[k * row_stride + j * col_stride];
              }
          }
        } else if (col_stride == 1) {
          for (int64_t k = 0; k < K; ++k) std::copy_n(from + k * row_stride, width(p), to + k * kWidth);
        } else if (row_stride == 1) {  // a transpose, in blocks of kBlock rows that stay in L1
          constexpr int64_t kBlock = 64;
          for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
            const int64_t k1 = std::min(K, k0 + kBlock);
            for (int64_t j = 0; j < width(p); ++j)
              for (int64_t k = k0; k < k1; ++k) to[k * kWidth + j] = from[k + j * col_stride];
          }
        } else {
          for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < width(p); ++j) to[k * kWidth + j] = from[k * row_stride + j * col_stride];
        }
      }
    });
  }

  int64_t count() const { return count_; }

  // C[:, the columns of panels [first, last)] (+)= A (rows, K) · B, on this thread.
  void multiply(int64_t rows, const T* A, int64_t lda, Out* out, int64_t ldc, Span panels, bool add = false) const {
    if constexpr (!kVnni<T>) {
      if (rows_) {
        const Span cols = columns(panels);
        if (cols.end > cols.begin) unpacked(rows, 0, K_, A, lda, out, ldc, cols.begin, cols.end, add);
        return;
      }
    }
    for (int64_t p = panels.begin; p < panels.end; ++p) multiply_rows(rows, 0, K_, A, lda, out, ldc, p, add);
  }

  // C[:, panel p's columns] (+)= A (rows, inner) · B[k0 : k0 + inner, panel p's columns], on this thread
  // (k0 even for bf16).
  void multiply_rows(int64_t rows, int64_t k0, int64_t inner, const T* A, int64_t lda, Out* out, int64_t ldc, int64_t p,
                     bool add) const {
    if constexpr (!kVnni<T>) {
      if (rows_) {
        unpacked(rows, k0, inner, A, lda, out, ldc, p * kWidth, p * kWidth + width(p), add);
        return;
      }
    }
    if (k0 + inner == K_) inner = depth_ - k0;  // bf16 with odd K: through the zero row
    gemm(rows, width(p), inner, A, lda, buffer_.data_ptr<T>() + (p * depth_ + k0) * kWidth, kWidth, out + p * kWidth,
         ldc, add);
  }

  // The columns [begin, end) of B that panels [first, last) hold.
  Span columns(Span panels) const { return {panels.begin * kWidth, std::min(N_, panels.end * kWidth)}; }

 private:
  int64_t width(int64_t p) const { return std::min(kWidth, N_ - p * kWidth); }

  // C[:, j0:j1] (+)= A (rows, inner) · W[j0:j1, k0 : k0 + inner]^T, W unpacked (W^T a transposed view).
  void unpacked(int64_t rows, int64_t k0, int64_t inner, const T* A, int64_t lda, T* C, int64_t ldc, int64_t j0,
                int64_t j1, bool add) const {
    aten_product(rows, j1 - j0, inner, A, lda, rows_ + j0 * row_ld_ + k0, 1, row_ld_, C + j0, ldc, add);
  }

  int64_t K_, depth_, N_, count_;  // depth_: K, or K rounded up to even for bf16
  Tensor buffer_;
  const T* rows_ = nullptr;  // unpacked: W (N, K) with rows row_ld_ apart
  int64_t row_ld_ = 0;
};

// The same product for large operands (the input projection and the weight gradients, outside the time
// loop), spread over ATen's threads: B packed into panels, then tiles of 64 rows by one panel, the inner
// dimension in chunks so that each tile's operands stay in cache. C (M, N) = A (M, K) · B + bias (N)?, A's rows
// lda apart (for bf16 with odd K, lda > K and A's column K zero: see Panels).
template <typename T>
void tiled_gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const Panels<T>& B, const Acc<T>* bias,
                Acc<T>* C) {
  constexpr int64_t kRows = 64, kInner = 512, kWidth = Panels<T>::kWidth;
  const int64_t panels = B.count(), row_tiles = (M + kRows - 1) / kRows;
  at::parallel_for(0, row_tiles * panels, 1, [&](int64_t first, int64_t last) {
    for (int64_t tile = first; tile < last; ++tile) {
      const int64_t r = (tile / panels) * kRows, p = tile % panels, c = p * kWidth;
      const int64_t rows = std::min(kRows, M - r), width = std::min(kWidth, N - c);
      if (bias) {  // the bias that the products add to
        for (int64_t i = 0; i < rows; ++i) std::copy_n(bias + c, width, C + (r + i) * N + c);
      }
      for (int64_t k = 0; k < K; k += kInner) {
        B.multiply_rows(rows, k, std::min(kInner, K - k), A + r * lda + k, lda, C + r * N, N, p, bias || k > 0);
      }
    }
    release_tiles<T>();
  });
}

// dst (C, R) = src (R, C)^T, both contiguous: in blocks that stay in cache, split over ATen's threads.
template <typename T>
void transpose(const T* src, int64_t R, int64_t C, T* dst) {
  constexpr int64_t kBlock = 32;
  at::parallel_for(0, (R + kBlock - 1) / kBlock, 16, [&](int64_t first, int64_t last) {
    for (int64_t r0 = first * kBlock; r0 < std::min(R, last * kBlock); r0 += kBlock) {
      const int64_t r1 = std::min(R, r0 + kBlock);
      for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const int64_t c1 = std::min(C, c0 + kBlock);
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) dst[c * R + r] = src[r * C + c];
      }
    }
  });
}

}  // namespace lstmkit
