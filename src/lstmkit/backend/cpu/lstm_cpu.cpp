// lstmkit CPU kernel: the LSTM recurrence over T steps, forward and hand-derived backward.
//
// It is the time loop of lstmkit.functional.lstm_step / lstm_step_backward, the same equations. Per step:
// the recurrent matrix product, split by columns over the threads (oneDNN's GEMM micro-kernel through
// ATen), then one fused pass per batch row (the row functions below, vectorised by the compiler, exp and
// tanh as inline polynomials for float), split by rows. All T steps run in one parallel region with a barrier
// between the phases. The weight gradients stay outside the loop, one large product each
// (lstmkit.functional.weight_gradients, through `matmul` below); so does the input projection with layer
// norm (input_projection), while without it each step multiplies x_t by W_ih next to h by W_hh: the
// (T, B, G*H) projection never goes through memory.
//
// Shape contract. T steps, B batch, H hidden, P = proj_size or H, G = 4 gates (i, f, g, o) or 3 with
// coupled gates (f, g, o). Optional tensors (?) are None when the variant is off.
//   x_gates  (T, B, G*H)   LN_x(W_ih x_t) + b_ih + b_hh
//   h0 (B, P), c0 (B, H)
//   w_hh (G*H, P); w_hr (P, H)?                       projection
//   w_ci (H)?, w_cf (H)?, w_co (H)?                   peephole (no w_ci with coupled gates)
//   ln_hh (G*H)?, ln_c_w (H)?, ln_c_b (H)?            layer norm on W_hh h and on the cell
//   mask (B, P)?                                      recurrent dropout
//   keep_c (T, B, H)?, keep_h (T, B, P)?              zoneout keep factors
//   batch_sizes (T,) int64?                           ragged batch: rows sorted by length, longest first;
//                                                     step t runs the first batch_sizes[t] rows only
// forward(x_gates, ..., batch_sizes?, record, w_ih?, bias?)
//               with w_ih (G*H, I) and bias (G*H)?: x_gates is x (T, B, I), projected step by step (no LN_x)
//               -> [output (T, B, P), h_T (B, P), c_T (B, H), and when `record`
//                  the StepCache stacked: h_in (T,B,P), c_prev, i, f, g, o, c_new, tanh_c, m (T,B,H),
//                  hh_normed (T,B,G*H)?, hh_rstd (T,B,1)?, c_normed (T,B,H)?, c_rstd (T,B,1)?]
//                  (ragged: outputs past a row's length are 0, h_T is the output at its last step)
// backward(d_output (T,B,P), dh_T, dc_T, StepCache list, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?,
//          mask?, keep_c?, keep_h?, batch_sizes?)
//          -> [dh_0 (B,P), dc_0 (B,H), then StepGrads: da, dhh (T,B,G*H), dh_new (T,B,P), dc_hat (T,B,H),
//              and with layer norm ln_totals (G*H + 2H): the sums of functional.layer_norm_totals]
// step(x (B,I), h (L,B,P), c (L,B,H), per-layer weights, zoneout_c, zoneout_h) -> [h, c]: one step of
//          every layer at once, inference (streaming; see step_impl).
// matmul(a (M,K), b (K,N), bias (N)?) -> a·b + bias; matmul_tn(a (K,M), b (K,N)) -> a^T·b; tiled over
//          ATen's threads, b of any strides.
// layer_norm(x (N,n), gain (n), bias (n)?) -> [y, stats (N,2) = (mean, rstd)];
// layer_norm_backward(dy, x, stats, gain) -> [dx, dgain]: the input projection's layer norm.
// All other tensors contiguous, float32 or float64, on the CPU.

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <omp.h>
#include <torch/extension.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

using at::Tensor;
using OptTensor = std::optional<Tensor>;

namespace {

constexpr double kLayerNormEps = 1e-5;

// exp and tanh for the gates. double (the gradient checks): the C library's. float: inline polynomials that
// the compiler vectorises with the loop around them, about twice as fast as the vector math library's calls,
// within 5e-7 relative error of exact (3.2e-7 at most over [-20, 20]; tests/test_cpu_kernel.py checks them
// against float64).
template <typename T>
inline T fast_exp(T x) {
  return std::exp(x);
}

// e^x = 2^n e^r, x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, Cody-Waite), e^r by Cephes' expf
// polynomial, 2^n written into the exponent bits. x is clamped to [-87, 88] (e^x stays a normal float).
template <>
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
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
  return p * scale;
}

template <typename T>
inline T fast_tanh(T x) {
  return std::tanh(x);
}

// tanh x = x P(x^2) / Q(x^2), a rational minimax fit on [-9, 9] (Eigen's float tanh); |x| > 9 gives ±1.
template <>
inline float fast_tanh(float x) {
  x = std::min(std::max(x, -9.0f), 9.0f);
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

template <typename T>
const T* data_or_null(const OptTensor& t) {
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

// An absent variant's weights or keep factors read as zeros: w * c adds 0 and a lerp by 0 keeps the new
// value, exactly; so the row loops have no branches and vectorise.
template <typename T>
const T* data_or_zeros(const OptTensor& t, const std::vector<T>& zeros) {
  return t.has_value() ? t->data_ptr<T>() : zeros.data();
}

// ---- matrix products -----------------------------------------------------------------------------------

// C (M, N) = A (M, K) · B (K, N) (+ C when `add`), row-major with leading dimensions, on this thread.
// float: oneDNN's batch-reduce GEMM micro-kernel through ATen (generated once per shape and cached; on
// CPUs where the BLAS takes a generic path it is several times faster); double (the gradient checks):
// ATen's matrix product on views of the same memory.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
          bool add) {
  if (M <= 0 || N <= 0) return;
  if constexpr (std::is_same_v<T, float>) {
    at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, A, B, C, /*is_vnni=*/false);
  } else {
    const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    const Tensor a = at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, options);
    const Tensor b = at::from_blob(const_cast<T*>(B), {K, N}, {ldb, 1}, options);
    Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, options);
    if (add) {
      c.addmm_(a, b);
    } else {
      at::mm_out(c, a, b);
    }
  }
}

// ---- threads inside the time loop ----------------------------------------------------------------------

// The loops run in one parallel region for all T steps: per step the threads split the recurrent product
// by columns and the gate arithmetic by batch rows, and meet at a barrier between the two. One region,
// not one per step: a fork per step costs more than the work at small sizes.
struct Span {
  int64_t begin, end;
};

// Thread `id` of `count`'s share of [0, n): rows, or panels of columns.
inline Span share(int64_t n, int id, int count) { return {n * id / count, n * (id + 1) / count}; }

// The threads of one loop meet twice per step, a few microseconds apart: a barrier that puts waiting threads
// to sleep (OpenMP's default here) costs more than the step. This one spins, with a pause, and yields the
// core after a while, so that a machine busy with other work is not starved either.
class SpinBarrier {
 public:
  void set_threads(int threads) { threads_ = threads; }

  void wait() {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      if (spins < kSpins) {
        pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  static constexpr int kSpins = 20000;
  int threads_ = 1;
  std::atomic<int> arrived_{0}, generation_{0};
};

thread_local SpinBarrier* current_barrier = nullptr;  // the loop this thread works in, if threaded

inline void barrier() {
  if (current_barrier) current_barrier->wait();
}

// Threads for a loop whose per-step product has `flops`: one when a step is too small for a barrier to pay.
inline int loop_threads(double flops_per_step) {
  constexpr double kFlopsPerThread = 4e5;
  const int most = at::get_num_threads();
  return std::max(1, std::min(most, static_cast<int>(flops_per_step / kFlopsPerThread)));
}

template <typename Body>
void in_parallel(int threads, Body&& body) {
  if (threads <= 1) {
    body(0, 1);
    return;
  }
  SpinBarrier meeting;
#pragma omp parallel num_threads(threads)
  {
#pragma omp single
    meeting.set_threads(omp_get_num_threads());  // (the runtime may give fewer); single ends in a barrier
    current_barrier = &meeting;
    body(omp_get_thread_num(), omp_get_num_threads());
    current_barrier = nullptr;
  }
}

// ---- large buffers, reused --------------------------------------------------------------------------------

// Caches and gradients are megabytes each, made anew every call. The allocator takes such blocks fresh
// from the operating system and gives them back when freed, so every call pays a page fault per 4 KB
// touched: more than the arithmetic at moderate sizes. The pool keeps the blocks and hands one out again
// once nothing else refers to its storage (autograd has released the caches, the caller the outputs).
class BufferPool {
 public:
  Tensor get(at::IntArrayRef shape, const at::TensorOptions& options, bool zeroed) {
    const int64_t numel = c10::multiply_integers(shape);
    const size_t bytes = numel * options.dtype().itemsize();
    if (bytes < kSmallest) return zeroed ? at::zeros(shape, options) : at::empty(shape, options);
    Tensor found;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const Tensor& buffer : buffers_) {
        if (buffer.storage().use_count() == 1 && buffer.use_count() == 1 && buffer.dtype() == options.dtype() &&
            buffer.numel() == numel) {
          found = buffer.view(shape);  // the view holds the storage: not free until it is dropped
          break;
        }
      }
      if (!found.defined()) {
        Tensor buffer = at::empty({numel}, options);
        if (buffers_.size() >= kMost) evict_one_free();
        buffers_.push_back(buffer);
        found = buffer.view(shape);
      }
    }
    return zeroed ? found.zero_() : found;
  }

 private:
  static constexpr size_t kSmallest = 256 * 1024, kMost = 64;

  void evict_one_free() {
    for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
      if (it->storage().use_count() == 1 && it->use_count() == 1) {
        buffers_.erase(it);
        return;
      }
    }
  }

  std::mutex mutex_;
  std::vector<Tensor> buffers_;
};

BufferPool& pool() {
  static BufferPool instance;
  return instance;
}

// ---- a fixed weight in panels ----------------------------------------------------------------------------

// B (K, N) repacked into panels of kWidth columns, each panel (K, kWidth) contiguous: the micro-kernel
// streams each panel in order, at nearly its full speed, where the strided rows of a whole (K, N) matrix
// stall it (up to 2x at small batches). The time loops pack their weights once per call, the large products
// their right operand. Element (k, j) of B is src[k * row_stride + j * col_stride], so a weight and its
// transpose pack without a copy first. Packing is split over ATen's threads (call it outside the loops).
template <typename T>
class Panels {
 public:
  static constexpr int64_t kWidth = 64;

  Panels(const T* src, int64_t K, int64_t N, int64_t row_stride, int64_t col_stride, const at::TensorOptions& opt)
      : K_(K), N_(N), count_((N + kWidth - 1) / kWidth) {
    buffer_ = pool().get({count_ * K * kWidth}, opt, /*zeroed=*/N % kWidth != 0);
    T* out = buffer_.data_ptr<T>();
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, K * kWidth));  // small: one thread
    at::parallel_for(0, count_, grain, [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) {  // read along src's contiguous direction
        const T* from = src + p * kWidth * col_stride;
        T* to = out + p * K * kWidth;
        if (col_stride == 1) {
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
  void multiply(int64_t rows, const T* A, int64_t lda, T* C, int64_t ldc, Span panels, bool add = false) const {
    for (int64_t p = panels.begin; p < panels.end; ++p) multiply_rows(rows, 0, K_, A, lda, C, ldc, p, add);
  }

  // C[:, panel p's columns] (+)= A (rows, inner) · B[k0 : k0 + inner, panel p's columns], on this thread.
  void multiply_rows(int64_t rows, int64_t k0, int64_t inner, const T* A, int64_t lda, T* C, int64_t ldc, int64_t p,
                     bool add) const {
    gemm(rows, width(p), inner, A, lda, buffer_.data_ptr<T>() + (p * K_ + k0) * kWidth, kWidth, C + p * kWidth, ldc,
         add);
  }

  // The columns [begin, end) of B that panels [first, last) hold.
  Span columns(Span panels) const { return {panels.begin * kWidth, std::min(N_, panels.end * kWidth)}; }

 private:
  int64_t width(int64_t p) const { return std::min(kWidth, N_ - p * kWidth); }
  int64_t K_, N_, count_;
  Tensor buffer_;
};

// The same product for large operands (the input projection and the weight gradients, outside the time
// loop), spread over ATen's threads: B packed into panels, then tiles of 64 rows by one panel, the inner
// dimension in chunks so that each tile's operands stay in cache. C (M, N) = A (M, K) · B + bias (N)?.
template <typename T>
void tiled_gemm(int64_t M, int64_t N, int64_t K, const T* A, const Panels<T>& B, const T* bias, T* C) {
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
        B.multiply_rows(rows, k, std::min(kInner, K - k), A + r * K + k, K, C + r * N, N, p, bias || k > 0);
      }
    }
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

// ---- layer norm over one row ---------------------------------------------------------------------------

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

// ---- forward rows --------------------------------------------------------------------------------------

// i, f, g and c̃ = f ⊙ c_prev + i ⊙ g for one row; a points at the G*H pre-activations.
template <typename T, bool Coupled>
void gates_row(const T* __restrict a, const T* __restrict c_prev, const T* __restrict w_ci,
               const T* __restrict w_cf, int64_t H, T* __restrict i_out, T* __restrict f_out,
               T* __restrict g_out, T* __restrict c_new) {
  const T* a_i = a;
  const T* a_f = Coupled ? a : a + H;
  const T* a_g = a_f + H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T f = sigmoid(a_f[j] + w_cf[j] * c_prev[j]);
    const T i = Coupled ? T(1) - f : sigmoid(a_i[j] + w_ci[j] * c_prev[j]);
    const T g = fast_tanh(a_g[j]);
    f_out[j] = f;
    i_out[j] = i;
    g_out[j] = g;
    c_new[j] = f * c_prev[j] + i * g;
  }
}

// o, tanh(ĉ), m = o ⊙ tanh(ĉ) and the carried cell c_t = c̃ + k (c_prev - c̃) for one row.
template <typename T>
void output_row(const T* __restrict a_o, const T* __restrict c_new, const T* __restrict c_hat,
                const T* __restrict c_prev, const T* __restrict w_co, const T* __restrict keep_c, int64_t H,
                T* __restrict o_out, T* __restrict tanh_out, T* __restrict m_out, T* __restrict c_out) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T o = sigmoid(a_o[j] + w_co[j] * c_new[j]);
    const T tc = fast_tanh(c_hat[j]);
    o_out[j] = o;
    tanh_out[j] = tc;
    m_out[j] = o * tc;
    c_out[j] = c_new[j] + keep_c[j] * (c_prev[j] - c_new[j]);
  }
}

// ---- backward rows -------------------------------------------------------------------------------------

// From dL/dm (m = o ⊙ tanh(ĉ)) and dL/dc_t: the four pre-activation gradients da and dL/dc_{t-1}.
// dc_hat receives dL/dĉ; dcn holds dL/dc̃ from the hidden path (after the cell's layer norm, if any).
template <typename T, bool Coupled>
void gate_grads_row(const T* __restrict dm, const T* __restrict dcn, const T* __restrict i,
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
    const T dc_new = dc_t * (T(1) - keep_c[j]) + dcn[j] + d_o * w_co[j];
    const T di = dc_new * g[j];
    const T df = dc_new * c_prev[j];
    const T d_i = di * i[j] * (T(1) - i[j]);
    const T d_f = (Coupled ? df - di : df) * f[j] * (T(1) - f[j]);  // coupled: i = 1 - f
    // With coupled gates da_i aliases da_f: the second store wins, and w_ci reads as zeros.
    da_i[j] = d_i;
    da_f[j] = d_f;
    da_g[j] = dc_new * i[j] * (T(1) - g[j] * g[j]);
    da_o[j] = d_o;
    dc[j] = dc_new * f[j] + dc_t * keep_c[j] + d_i * w_ci[j] + d_f * w_cf[j];
  }
}

// batch_sizes (T,) int64, non-increasing, each in [0, B]: checked once, outside the parallel region.
void check_batch_sizes(const OptTensor& sizes, int64_t steps, int64_t batch) {
  if (!sizes) return;
  TORCH_CHECK(sizes->dim() == 1 && sizes->size(0) == steps && sizes->scalar_type() == at::kLong &&
                  sizes->is_contiguous(),
              "batch_sizes must be a contiguous (T,) int64 tensor");
  const int64_t* n = sizes->data_ptr<int64_t>();
  for (int64_t t = 0; t < steps; ++t)
    TORCH_CHECK(n[t] >= 0 && n[t] <= batch && (t == 0 || n[t] <= n[t - 1]), "batch_sizes must be non-increasing in [0, B]");
}

// ---- the loops -----------------------------------------------------------------------------------------

// Active rows per step: all B, or batch_sizes[t] of a batch sorted by length, longest first (ragged).
struct Active {
  const int64_t* sizes;
  int64_t batch;
  int64_t at(int64_t t) const { return sizes ? sizes[t] : batch; }
};

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h, const OptTensor& batch_sizes, bool record,
                                 const OptTensor& w_ih, const OptTensor& bias) {
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
  auto make = [&](std::initializer_list<int64_t> shape) {
    return pool().get(shape, x_gates.options(), ragged);
  };
  Tensor output = make({steps, B, P}), h_in = make({cached, B, P}), c_prev = make({cached, B, H});
  Tensor gi = make({cached, B, H}), gf = make({cached, B, H}), gg = make({cached, B, H});
  Tensor go = make({cached, B, H}), c_new = make({cached, B, H}), tanh_c = make({cached, B, H});
  Tensor m = make({cached, B, H});
  Tensor hh_normed, hh_rstd, c_normed, c_rstd;
  if (ln_hh) hh_normed = make({cached, B, GH}), hh_rstd = make({cached, B, 1});
  if (ln_c_w) c_normed = make({cached, B, H}), c_rstd = make({cached, B, 1});
  const auto options = x_gates.options();
  Tensor hh = at::empty({B, GH}, options), c_cur = c0.clone();
  const Panels<T> recurrent(w_hh.data_ptr<T>(), P, GH, 1, P, options);  // W_hh^T (P, G*H)
  std::optional<Panels<T>> projection, input;                           // W_hr^T (H, P), W_ih^T (I, G*H)
  if (w_hr) projection.emplace(w_hr->data_ptr<T>(), H, P, 1, H, options);
  if (w_ih) input.emplace(w_ih->data_ptr<T>(), I, GH, 1, I, options);

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
  const T* bias_p = data_or_zeros<T>(bias, zeros);  // the x part of every row, projecting per step
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w), *ln_cb_p = data_or_null<T>(ln_c_b);
  const T *mask_p = data_or_null<T>(mask), *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);
  const T *xg_p = x_gates.data_ptr<T>(), *h0_p = h0.data_ptr<T>();
  T *out_p = output.data_ptr<T>(), *h_in_p = h_in.data_ptr<T>(), *c_prev_p = c_prev.data_ptr<T>();
  T *gi_p = gi.data_ptr<T>(), *gf_p = gf.data_ptr<T>(), *gg_p = gg.data_ptr<T>(), *go_p = go.data_ptr<T>();
  T *cn_p = c_new.data_ptr<T>(), *tc_p = tanh_c.data_ptr<T>(), *m_p = m.data_ptr<T>(), *cc = c_cur.data_ptr<T>();
  T *hn_p = ln_hh ? hh_normed.data_ptr<T>() : nullptr, *hr_p = ln_hh ? hh_rstd.data_ptr<T>() : nullptr;
  T *cnm_p = ln_c_w ? c_normed.data_ptr<T>() : nullptr, *cr_p = ln_c_w ? c_rstd.data_ptr<T>() : nullptr;
  T* hh_p = hh.data_ptr<T>();

  // h_in = h ⊙ mask (or h) for rows [b0, b1) and columns [c0, c1) of (B, P) blocks.
  auto carry_in = [&](const T* h, T* hin, int64_t b0, int64_t b1, int64_t c0, int64_t c1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t j = c0; j < c1; ++j) hin[b * P + j] = h[b * P + j] * (mask_p ? mask_p[b * P + j] : T(1));
  };
  const int threads = loop_threads(2.0 * B * GH * (P + (input ? I : 0)));

  in_parallel(threads, [&](int id, int count) {
    const Span first_rows = share(B, id, count);
    carry_in(h0_p, h_in_p, first_rows.begin, first_rows.end, 0, P);
    barrier();
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t n = active.at(t), c = t * stride;
      const T* h_prev = t == 0 ? h0_p : out_p + (t - 1) * BP;
      T* hin = h_in_p + c * BP;
      T* hin_next = h_in_p + (t + 1 < steps ? (t + 1) * stride : 0) * BP;
      T *cp = c_prev_p + c * BH, *pi = gi_p + c * BH, *pf = gf_p + c * BH, *pg = gg_p + c * BH;
      T *po = go_p + c * BH, *pcn = cn_p + c * BH, *ptc = tc_p + c * BH, *pm = m_p + c * BH, *out = out_p + t * BP;
      const T* xg = xg_p + t * B * (input ? I : GH);
      const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
      const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();

      const Span panels = share(recurrent.count(), id, count);
      if (input) input->multiply(n, xg, I, hh_p, GH, panels);  // x_t W_ih^T
      recurrent.multiply(n, hin, P, hh_p, GH, panels, input.has_value());  // (+) W_hh h_in
      barrier();

      const Span rows = share(n, id, count);
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        T* a = hh_p + b * GH;  // becomes the pre-activations a = x_gates + LN_h(W_hh h_in)
        const T* x = input ? bias_p : xg + b * GH;
        const int64_t r = b * H;
        std::memcpy(cp + r, cc + r, H * sizeof(T));
        if (ln_hh_p) {
          hr_p[c * B + b] = layer_norm_add_row(a, x, ln_hh_p, hn_p + (c * B + b) * GH, GH);
        } else {
          for (int64_t j = 0; j < GH; ++j) a[j] += x[j];
        }
        (coupled ? gates_row<T, true> : gates_row<T, false>)(a, cp + r, w_ci_p, w_cf_p, H, pi + r, pf + r, pg + r,
                                                             pcn + r);
        const T* c_hat = pcn + r;  // tanh's argument: c̃, or LN_c(c̃) written into the tanh_c row first
        if (ln_cw_p) {
          T* normed = cnm_p + c * BH + r;
          cr_p[c * B + b] = layer_norm_row(pcn + r, normed, H);
          for (int64_t j = 0; j < H; ++j) ptc[r + j] = normed[j] * ln_cw_p[j] + ln_cb_p[j];
          c_hat = ptc + r;
        }
        output_row(a + GH - H, pcn + r, c_hat, cp + r, w_co_p, kc + r, H, po + r, ptc + r, pm + r, cc + r);
        if (record && t + 1 < steps && b >= active.at(t + 1)) {  // a sequence's last step: its c_t is
          std::memcpy(cp + BH + r, cc + r, H * sizeof(T));        // read as the next step's c_prev (trace)
        }
        if (!projection) {  // h_t = m + k (h_prev - m)
          T* h = out + b * P;
          const T *mr = pm + r, *hp = h_prev + b * P, *k = kh + b * P;
          for (int64_t j = 0; j < P; ++j) h[j] = mr[j] + k[j] * (hp[j] - mr[j]);
          if (t + 1 < steps) carry_in(out, hin_next, b, b + 1, 0, P);
        }
      }
      if (projection) {  // h̃ = W_hr m, split by columns of P
        barrier();
        const Span panels = share(projection->count(), id, count), pcols = projection->columns(panels);
        projection->multiply(n, pm, H, out, P, panels);
        for (int64_t b = 0; b < n; ++b)
          for (int64_t j = pcols.begin; j < pcols.end; ++j) {
            const int64_t k = b * P + j;
            out[k] += kh[k] * (h_prev[k] - out[k]);
          }
        if (t + 1 < steps) carry_in(out, hin_next, 0, n, pcols.begin, pcols.end);
      }
      barrier();
    }
  });

  // h_T of each row: its last active step's output.
  Tensor h_T = at::empty({B, P}, x_gates.options());
  for (int64_t b = 0, t = steps - 1; b < B; ++b) {
    while (t > 0 && active.at(t) <= b) --t;
    std::memcpy(h_T.data_ptr<T>() + b * P, out_p + (t * B + b) * P, P * sizeof(T));
  }
  if (!record) return {output, h_T, c_cur};
  return {output, h_T, c_cur, h_in, c_prev, gi, gf, gg, go, c_new, tanh_c, m, hh_normed, hh_rstd, c_normed, c_rstd};
}

template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h, const OptTensor& batch_sizes) {
  // cache: the StepCache fields in order (h_in, c_prev, i, f, g, o, c_new, tanh_c, m, hh_normed, hh_rstd,
  // c_normed, c_rstd); the last four only with layer norm.
  const Tensor &c_prev = *cache[1], &gi = *cache[2], &gf = *cache[3], &gg = *cache[4], &go = *cache[5],
               &tanh_c = *cache[7];
  const Tensor hh_normed = cache[9].value_or(Tensor()), hh_rstd = cache[10].value_or(Tensor());
  const Tensor c_normed = cache[11].value_or(Tensor()), c_rstd = cache[12].value_or(Tensor());
  const int64_t steps = d_output.size(0), B = d_output.size(1), P = d_output.size(2), H = c_prev.size(2);
  const int64_t GH = w_hh.size(0), BH = B * H, BP = B * P;
  const bool coupled = GH == 3 * H, ragged = batch_sizes.has_value();
  const Active active{ragged ? batch_sizes->data_ptr<int64_t>() : nullptr, B};
  // Ragged: rows past a sequence's end keep zero gradients (the weight gradients sum over all rows).
  auto make = [&](std::initializer_list<int64_t> shape) {
    return pool().get(shape, d_output.options(), ragged);
  };

  Tensor da = make({steps, B, GH}), dh_new = make({steps, B, P}), dc_hat = make({steps, B, H});
  Tensor dhh = ln_hh ? make({steps, B, GH}) : da;
  Tensor dh = dh_T.clone(), dc = dc_T.clone();  // dL/dh_t, dL/dc_t carried back through time
  Tensor dh_total = at::empty({B, P}, d_output.options()), dm = at::empty({B, H}, d_output.options());

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w);
  const T *mask_p = data_or_null<T>(mask), *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);
  const T *dout_p = d_output.data_ptr<T>(), *gi_p = gi.data_ptr<T>(), *gf_p = gf.data_ptr<T>();
  const T *gg_p = gg.data_ptr<T>(), *go_p = go.data_ptr<T>(), *tc_p = tanh_c.data_ptr<T>();
  const T* cp_p = c_prev.data_ptr<T>();
  const auto options = d_output.options();
  const Panels<T> recurrent(w_hh.data_ptr<T>(), GH, P, P, 1, options);  // W_hh (G*H, P)
  std::optional<Panels<T>> projection;                                  // W_hr (P, H)
  if (w_hr) projection.emplace(w_hr->data_ptr<T>(), P, H, H, 1, options);
  const T* cnm_p = ln_c_w ? c_normed.data_ptr<T>() : nullptr;
  const T* cr_p = ln_c_w ? c_rstd.data_ptr<T>() : nullptr;
  const T* hn_p = ln_hh ? hh_normed.data_ptr<T>() : nullptr;
  const T* hr_p = ln_hh ? hh_rstd.data_ptr<T>() : nullptr;
  T *da_p = da.data_ptr<T>(), *dhh_p = dhh.data_ptr<T>(), *dhn_p = dh_new.data_ptr<T>();
  T *dch_p = dc_hat.data_ptr<T>(), *dh_p = dh.data_ptr<T>(), *dc_p = dc.data_ptr<T>();
  T *dt_p = dh_total.data_ptr<T>(), *dm_p = dm.data_ptr<T>();
  const int threads = loop_threads(2.0 * B * GH * P);

  // layer norm: each thread's sums of da ⊙ hh_normed (G*H), dc_hat ⊙ c_normed (H) and dc_hat (H)
  Tensor ln_partial = ln_hh ? at::zeros({threads, GH + 2 * H}, options) : Tensor();
  T* lnp_p = ln_hh ? ln_partial.data_ptr<T>() : nullptr;

  in_parallel(threads, [&](int id, int count) {
    std::vector<T> dcn_row(H);  // one row's dL/dc̃ through the cell's layer norm
    T* ln_sum = lnp_p ? lnp_p + id * (GH + 2 * H) : nullptr;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t n = active.at(t), s = t * BH;
      const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();
      const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
      const T* dout = dout_p + t * BP;
      T* dhn = dhn_p + t * BP;
      T* dat = da_p + t * B * GH;
      T* dhht = dhh_p + t * B * GH;
      const Span rows = share(n, id, count);
      for (int64_t k = rows.begin * P; k < rows.end * P; ++k) {
        dt_p[k] = dh_p[k] + dout[k];        // this step's output share plus what step t+1 sent back
        dhn[k] = dt_p[k] * (T(1) - kh[k]);  // h_t = k h_{t-1} + (1 - k) h̃_t
      }
      if (projection) {  // dL/dm = dh̃ · W_hr, split by columns of H
        barrier();
        projection->multiply(n, dhn, P, dm_p, H, share(projection->count(), id, count));
        barrier();
      }
      const T* dmt = projection ? dm_p : dhn;
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        const int64_t r = b * H;
        const T *dmr = dmt + r, *o = go_p + s + r, *tc = tc_p + s + r;
        T* dch = dch_p + s + r;
        for (int64_t j = 0; j < H; ++j) dch[j] = dmr[j] * o[j] * (T(1) - tc[j] * tc[j]);  // dL/dĉ
        const T* dcn = dch;  // dL/dc̃ through the hidden path: dL/dĉ, or back through the cell's layer norm
        if (ln_cw_p) {       // (layer norm has ln_sum: the cell's gain and shift sums follow the hidden's)
          layer_norm_add_row_backward(dch, cnm_p + s + r, ln_cw_p, cr_p[t * B + b], H, dcn_row.data(), ln_sum + GH);
          for (int64_t j = 0; j < H; ++j) ln_sum[GH + H + j] += dch[j];
          dcn = dcn_row.data();
        }
        T* a = dat + b * GH;
        (coupled ? gate_grads_row<T, true> : gate_grads_row<T, false>)(
            dmr, dcn, gi_p + s + r, gf_p + s + r, gg_p + s + r, o, tc, cp_p + s + r, w_ci_p, w_cf_p, w_co_p,
            kc + r, H, a, dc_p + r);
        if (ln_hh_p) {
          layer_norm_add_row_backward(a, hn_p + (t * B + b) * GH, ln_hh_p, hr_p[t * B + b], GH, dhht + b * GH, ln_sum);
        }
      }
      barrier();
      // dL/dh_{t-1}: back through W_hh, split by columns of P
      const Span panels = share(recurrent.count(), id, count), pcols = recurrent.columns(panels);
      recurrent.multiply(n, dhht, GH, dh_p, P, panels);
      for (int64_t b = 0; b < n; ++b)
        for (int64_t j = pcols.begin; j < pcols.end; ++j) {
          const int64_t k = b * P + j;
          dh_p[k] = dh_p[k] * (mask_p ? mask_p[k] : T(1)) + dt_p[k] * kh[k];
        }
      barrier();
    }
  });
  return {dh, dc, da, dhh, dh_new, dc_hat, ln_hh ? ln_partial.sum(0) : Tensor()};
}

std::vector<Tensor> lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h, const OptTensor& batch_sizes, bool record,
                                 const OptTensor& w_ih, const OptTensor& bias) {
  TORCH_CHECK(x_gates.dim() == 3 && x_gates.size(0) > 0, "x_gates must be (T, B, G*H) with T > 0");
  TORCH_CHECK(!w_ih || (w_ih->size(0) == w_hh.size(0) && w_ih->size(1) == x_gates.size(2) && !ln_hh),
              "w_ih must be (G*H, I) for x (T, B, I), without layer norm");
  check_batch_sizes(batch_sizes, x_gates.size(0), x_gates.size(1));
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x_gates.scalar_type(), "lstmkit_forward", [&] {
    result = forward_impl<scalar_t>(x_gates, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, mask,
                                    keep_c, keep_h, batch_sizes, record, w_ih, bias);
  });
  return result;
}

std::vector<Tensor> lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h, const OptTensor& batch_sizes) {
  check_batch_sizes(batch_sizes, d_output.size(0), d_output.size(1));
  TORCH_CHECK(ln_hh.has_value() == ln_c_w.has_value(), "layer norm needs ln_hh and ln_c_w together");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(d_output.scalar_type(), "lstmkit_backward", [&] {
    result = backward_impl<scalar_t>(d_output, dh_T, dc_T, cache, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w,
                                     mask, keep_c, keep_h, batch_sizes);
  });
  return result;
}

// ---- one step through all layers: streaming inference -------------------------------------------------

constexpr int kStepTensorsPerLayer = 6;  // w_cat_t, bias?, w_hr_t?, w_ci?, w_cf?, w_co?

// x (B, I); h (L, B, P), c (L, B, H); per layer, kStepTensorsPerLayer tensors: w_cat_t ((I_l + P), G*H) =
// [W_ih W_hh]^T, bias (G*H)? = b_ih + b_hh, w_hr_t (H, P)?, w_ci (H)?, w_cf (H)?, w_co (H)?. Zoneout enters
// as its expectation (the keep probabilities), as in eval(). Returns the new h (L, B, P) and c (L, B, H).
template <typename T>
std::vector<Tensor> step_impl(const Tensor& x, const Tensor& h, const Tensor& c, const std::vector<OptTensor>& layers,
                              double zoneout_c, double zoneout_h) {
  const int64_t L = h.size(0), B = h.size(1), P = h.size(2), H = c.size(2);
  Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  std::vector<T> keep_c(H, T(zoneout_c)), keep_h(P, T(zoneout_h)), zeros(H, T(0)), inputs, a, gates(7 * H);
  std::vector<T> projected(P);
  const T* input = x.data_ptr<T>();
  int64_t input_size = x.size(1);
  for (int64_t l = 0; l < L; ++l) {
    const OptTensor* w = &layers[l * kStepTensorsPerLayer];
    const Tensor& w_cat_t = *w[0];
    const int64_t K = w_cat_t.size(0), GH = w_cat_t.size(1);
    const bool coupled = GH == 3 * H;
    const T *h_prev = h.data_ptr<T>() + l * B * P, *c_prev = c.data_ptr<T>() + l * B * H;
    T *h_new = h_out.data_ptr<T>() + l * B * P, *c_new = c_out.data_ptr<T>() + l * B * H;
    inputs.resize(B * K);
    a.resize(B * GH);
    for (int64_t b = 0; b < B; ++b) {  // [x_b, h_b] and the bias, then a = [x h] · [W_ih W_hh]^T + bias
      std::copy_n(input + b * input_size, input_size, inputs.data() + b * K);
      std::copy_n(h_prev + b * P, P, inputs.data() + b * K + input_size);
      if (w[1]) std::copy_n(w[1]->data_ptr<T>(), GH, a.data() + b * GH);
    }
    gemm<T>(B, GH, K, inputs.data(), K, w_cat_t.data_ptr<T>(), GH, a.data(), GH, w[1].has_value());
    const T *w_ci = data_or_zeros<T>(w[3], zeros), *w_cf = data_or_zeros<T>(w[4], zeros);
    const T* w_co = data_or_zeros<T>(w[5], zeros);
    T *i = gates.data(), *f = i + H, *g = f + H, *cn = g + H, *o = cn + H, *tc = o + H, *m = tc + H;
    for (int64_t b = 0; b < B; ++b) {
      const T* ab = a.data() + b * GH;
      const T *cp = c_prev + b * H, *hp = h_prev + b * P;
      (coupled ? gates_row<T, true> : gates_row<T, false>)(ab, cp, w_ci, w_cf, H, i, f, g, cn);
      output_row(ab + GH - H, cn, cn, cp, w_co, keep_c.data(), H, o, tc, m, c_new + b * H);
      const T* h_tilde = m;
      if (w[2]) {  // h̃ = W_hr m
        gemm<T>(1, P, H, m, H, w[2]->data_ptr<T>(), P, projected.data(), P, false);
        h_tilde = projected.data();
      }
      for (int64_t j = 0; j < P; ++j) h_new[b * P + j] = h_tilde[j] + keep_h[j] * (hp[j] - h_tilde[j]);
    }
    input = h_new;
    input_size = P;
  }
  return {h_out, c_out};
}

std::vector<Tensor> lstm_step(const Tensor& x, const Tensor& h, const Tensor& c, const std::vector<OptTensor>& layers,
                              double zoneout_c, double zoneout_h) {
  TORCH_CHECK(x.dim() == 2 && h.dim() == 3 && c.dim() == 3 && x.size(0) == h.size(1), "step: shapes");
  TORCH_CHECK(static_cast<int64_t>(layers.size()) == h.size(0) * kStepTensorsPerLayer, "step: one set per layer");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_step", [&] {
    result = step_impl<scalar_t>(x, h, c, layers, zoneout_c, zoneout_h);
  });
  return result;
}

// a (M, K) · b (K, N) + bias (N)?; a contiguous, b any strides, one floating type.
Tensor matmul(const Tensor& a, const Tensor& b, const OptTensor& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes do not match");
  TORCH_CHECK(a.is_contiguous() && a.scalar_type() == b.scalar_type(), "matmul: layouts");
  TORCH_CHECK(!bias || (bias->numel() == b.size(1) && bias->is_contiguous()), "matmul: bias must be (N,)");
  Tensor c = pool().get({a.size(0), b.size(1)}, a.options(), false);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstmkit_matmul", [&] {
    const Panels<scalar_t> panels(b.data_ptr<scalar_t>(), b.size(0), b.size(1), b.stride(0), b.stride(1), b.options());
    tiled_gemm<scalar_t>(a.size(0), b.size(1), a.size(1), a.data_ptr<scalar_t>(), panels, data_or_null<scalar_t>(bias),
                         c.data_ptr<scalar_t>());
  });
  return c;
}

// a^T (M, K) · b (K, N) for a (K, M) contiguous, b any strides: the weight gradients, sums over K = T*B
// rows. The operand with fewer columns is transposed (into a reused buffer), the other packed into panels;
// when that is b, the product is formed as (b^T a)^T.
Tensor matmul_tn(const Tensor& a, const Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0), "matmul_tn: shapes do not match");
  TORCH_CHECK(a.is_contiguous() && a.scalar_type() == b.scalar_type(), "matmul_tn: layouts");
  if (a.size(1) > b.size(1) && b.is_contiguous()) {
    Tensor c = pool().get({a.size(1), b.size(1)}, a.options(), false);
    return c.copy_(matmul_tn(b, a).t());
  }
  const int64_t K = a.size(0), M = a.size(1);
  Tensor a_t = pool().get({M, K}, a.options(), false);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstmkit_transpose", [&] {
    transpose<scalar_t>(a.data_ptr<scalar_t>(), K, M, a_t.data_ptr<scalar_t>());
  });
  return matmul(a_t, b, std::nullopt);
}

// Layer norm over the rows of x (N, n): [y = LN(x) ⊙ gain + bias?, stats (N, 2) = (mean, rstd)].
std::vector<Tensor> layer_norm(const Tensor& x, const Tensor& gain, const OptTensor& bias) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && gain.numel() == x.size(1) && gain.is_contiguous(),
              "layer_norm: x (N, n) and gain (n,), contiguous");
  TORCH_CHECK(!bias || (bias->numel() == x.size(1) && bias->is_contiguous()), "layer_norm: bias must be (n,)");
  Tensor y = pool().get({x.size(0), x.size(1)}, x.options(), false), stats = at::empty({x.size(0), 2}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_layer_norm", [&] {
    layer_norm_rows<scalar_t>(x.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(), data_or_null<scalar_t>(bias),
                              x.size(0), x.size(1), y.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>());
  });
  return {y, stats};
}

// Its backward: [dx (N, n), dgain (n)] from dy (N, n), x, stats and gain as in layer_norm.
std::vector<Tensor> layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& stats, const Tensor& gain) {
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.is_contiguous() && x.is_contiguous() && stats.is_contiguous() &&
                  gain.is_contiguous() && stats.numel() == 2 * x.size(0) && gain.numel() == x.size(1),
              "layer_norm_backward: dy, x (N, n), stats (N, 2), gain (n,), contiguous");
  Tensor dx = pool().get({x.size(0), x.size(1)}, x.options(), false);
  Tensor partial = at::zeros({at::get_num_threads(), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_layer_norm_backward", [&] {
    layer_norm_rows_backward<scalar_t>(dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(),
                                       gain.data_ptr<scalar_t>(), x.size(0), x.size(1), dx.data_ptr<scalar_t>(),
                                       partial.data_ptr<scalar_t>());
  });
  return {dx, partial.sum(0)};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstm_forward, "LSTM recurrence forward (see the shape contract in lstm_cpu.cpp)");
  m.def("backward", &lstm_backward, "LSTM recurrence backward (see the shape contract in lstm_cpu.cpp)");
  m.def("step", &lstm_step, "one step through all layers, inference (streaming; see step_impl)");
  m.def("matmul", &matmul, "a (M, K) · b (K, N) (+ bias) for CPU tensors, tiled over ATen's threads");
  m.def("layer_norm", &layer_norm, "layer norm over the rows of a matrix, with (mean, rstd) per row");
  m.def("layer_norm_backward", &layer_norm_backward, "layer_norm's backward: dx and the gain's gradient");
  m.def("matmul_tn", &matmul_tn, "a^T · b for a (K, M), b (K, N) CPU tensors, tiled over ATen's threads");
}
