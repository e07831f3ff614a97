// lstmkit CPU kernel: the LSTM recurrence over T steps, forward and hand-derived backward.
//
// It is the time loop of lstmkit.functional.lstm_step / lstm_step_backward, the same equations: per step,
// the recurrent matrix product (ATen's GEMM), then one fused pass per batch row (the row functions below,
// vectorised by the compiler, exp/tanh from the vector math library). The input projection and the weight
// gradients stay outside, as one large product each (lstmkit.functional.input_projection and
// weight_gradients).
//
// Shape contract. T steps, B batch, H hidden, P = proj_size or H, G = 4 gates (i, f, g, o) or 3 with
// coupled gates (f, g, o). Optional tensors (?) are None when the variant is off.
//   x_gates  (T, B, G*H)   LN_x(W_ih x_t) + b_ih + b_hh
//   h0 (B, P), c0 (B, H)
//   w_hh (G*H, P); w_hr (P, H)?                       projection
//   w_ci (H)?, w_cf (H)?, w_co (H)?                   peephole (no w_ci with coupled gates)
//   ln_hh (G*H)?, ln_c_w (H)?, ln_c_b (H)?            layer norm on W_hh h and on the cell
//   mask (B, P)?                                      recurrent dropout
//   keep_c (T, B, H)?, keep_h (T, B, P)?              zoneout / padding keep factors
// forward(...) -> [output (T, B, P), h_T (B, P), c_T (B, H),
//                  then StepCache stacked: h_in (T,B,P), c_prev, i, f, g, o, c_new, tanh_c, m (T,B,H),
//                  hh_normed (T,B,G*H)?, hh_rstd (T,B,1)?, c_normed (T,B,H)?, c_rstd (T,B,1)?]
// backward(d_output (T,B,P), dh_T, dc_T, StepCache list, w_hh, w_hr?, w_ci?, w_cf?, w_co?, ln_hh?, ln_c_w?,
//          mask?, keep_c?, keep_h?)
//          -> [dh_0 (B,P), dc_0 (B,H), then StepGrads stacked: da, dhh (T,B,G*H), dh_new (T,B,P), dc_hat (T,B,H)]
// All tensors contiguous, float32 or float64, on the CPU.

#include <torch/extension.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

using at::Tensor;
using OptTensor = std::optional<Tensor>;

namespace {

constexpr double kLayerNormEps = 1e-5;

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
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

// ---- the per-step matrix products ---------------------------------------------------------------------

// MKL's packed GEMM (the weights packed once per call, not once per step), found at run time in the
// libtorch that torch already loaded; absent (another BLAS), products fall back to ATen's GEMM.
struct PackedSgemm {
  using GetSize = size_t (*)(int, int, int, int);
  using Pack = void (*)(int, int, int, int, int, int, float, const float*, int, float*);
  using Compute = void (*)(int, int, int, int, int, int, const float*, int, const float*, int, float, float*, int);
  GetSize get_size = nullptr;
  Pack pack = nullptr;
  Compute compute = nullptr;
  enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162 };

  static const PackedSgemm& instance() {
    static const PackedSgemm found = [] {
      PackedSgemm p;
      if (void* lib = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD)) {
        p.get_size = reinterpret_cast<GetSize>(dlsym(lib, "cblas_sgemm_pack_get_size"));
        p.pack = reinterpret_cast<Pack>(dlsym(lib, "cblas_sgemm_pack"));
        p.compute = reinterpret_cast<Compute>(dlsym(lib, "cblas_sgemm_compute"));
      }
      return p;
    }();
    return found;
  }
  bool available() const { return get_size && pack && compute; }
};

// c (rows, n) = a (rows, k) · op(W) for a fixed weight W (row-major): op(W) = W^T for W (n, k) when
// `transpose`, else W itself, (k, n). Raw pointers in and out: no tensors are made per step.
template <typename T>
class WeightGemm {
 public:
  WeightGemm(const Tensor& w, bool transpose, int64_t rows)
      : rows_(rows), n_(transpose ? w.size(0) : w.size(1)), k_(transpose ? w.size(1) : w.size(0)) {
    const auto& mkl = PackedSgemm::instance();
    if constexpr (std::is_same_v<T, float>) {
      if (mkl.available()) {
        packed_.resize(mkl.get_size(PackedSgemm::kBMatrix, rows_, n_, k_) / sizeof(float) + 1);
        mkl.pack(PackedSgemm::kRowMajor, PackedSgemm::kBMatrix, transpose ? PackedSgemm::kTrans : PackedSgemm::kNoTrans,
                 rows_, n_, k_, 1.0f, w.data_ptr<float>(), transpose ? k_ : n_, packed_.data());
        return;
      }
    }
    op_w_ = transpose ? w.t() : w;
  }

  void operator()(const T* a, T* c) const {
    if constexpr (std::is_same_v<T, float>) {
      if (!packed_.empty()) {
        PackedSgemm::instance().compute(PackedSgemm::kRowMajor, PackedSgemm::kNoTrans, PackedSgemm::kPacked, rows_, n_,
                                        k_, a, k_, packed_.data(), n_, 0.0f, c, n_);
        return;
      }
    }
    auto options = op_w_.options();
    Tensor out = at::from_blob(c, {rows_, n_}, options);
    at::mm_out(out, at::from_blob(const_cast<T*>(a), {rows_, k_}, options), op_w_);
  }

 private:
  int64_t rows_, n_, k_;
  std::vector<float> packed_;
  Tensor op_w_;
};

// ---- layer norm over one row ---------------------------------------------------------------------------

// normed = (x - mean) / sqrt(var + eps); returns 1 / sqrt(var + eps).
template <typename T>
T layer_norm_row(const T* __restrict x, T* __restrict normed, int64_t n) {
  T mean = 0, var = 0;
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= T(n);
  for (int64_t j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  const T rstd = T(1) / std::sqrt(var / T(n) + T(kLayerNormEps));
  for (int64_t j = 0; j < n; ++j) normed[j] = (x[j] - mean) * rstd;
  return rstd;
}

// In place: d <- rstd * (d - mean(d) - normed * mean(d * normed)), dL/dx from dL/d(normed).
template <typename T>
void layer_norm_backward_row(T* __restrict d, const T* __restrict normed, T rstd, int64_t n) {
  T mean_d = 0, mean_dn = 0;
  for (int64_t j = 0; j < n; ++j) {
    mean_d += d[j];
    mean_dn += d[j] * normed[j];
  }
  mean_d /= T(n);
  mean_dn /= T(n);
  for (int64_t j = 0; j < n; ++j) d[j] = rstd * (d[j] - mean_d - normed[j] * mean_dn);
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
    const T g = std::tanh(a_g[j]);
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
    const T tc = std::tanh(c_hat[j]);
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

// ---- the loops -----------------------------------------------------------------------------------------

template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h) {
  const int64_t steps = x_gates.size(0), B = x_gates.size(1), H = c0.size(1), P = h0.size(1);
  const int64_t GH = x_gates.size(2), BH = B * H, BP = B * P;
  const bool coupled = GH == 3 * H;
  auto make = [&](std::initializer_list<int64_t> shape) { return at::empty(shape, x_gates.options()); };
  Tensor output = make({steps, B, P}), h_in = make({steps, B, P}), c_prev = make({steps, B, H});
  Tensor gi = make({steps, B, H}), gf = make({steps, B, H}), gg = make({steps, B, H}), go = make({steps, B, H});
  Tensor c_new = make({steps, B, H}), tanh_c = make({steps, B, H}), m = make({steps, B, H});
  Tensor hh_normed, hh_rstd, c_normed, c_rstd;
  if (ln_hh) hh_normed = make({steps, B, GH}), hh_rstd = make({steps, B, 1});
  if (ln_c_w) c_normed = make({steps, B, H}), c_rstd = make({steps, B, 1});
  Tensor hh = make({B, GH}), c_cur = c0.clone();

  const WeightGemm<T> recurrent(w_hh, /*transpose=*/true, B);  // W_hh h_in
  std::unique_ptr<WeightGemm<T>> projection;                      // W_hr m
  if (w_hr) projection = std::make_unique<WeightGemm<T>>(*w_hr, /*transpose=*/true, B);

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
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

  for (int64_t t = 0; t < steps; ++t) {
    const T* h_prev = t == 0 ? h0_p : out_p + (t - 1) * BP;
    T* hin = h_in_p + t * BP;
    if (mask_p) {
      for (int64_t k = 0; k < BP; ++k) hin[k] = h_prev[k] * mask_p[k];
    } else {
      std::memcpy(hin, h_prev, BP * sizeof(T));
    }
    T* cp = c_prev_p + t * BH;
    std::memcpy(cp, cc, BH * sizeof(T));
    recurrent(hin, hh_p);  // (B, G*H)

    const T* xg = xg_p + t * B * GH;
    T *pi = gi_p + t * BH, *pf = gf_p + t * BH, *pg = gg_p + t * BH, *po = go_p + t * BH;
    T *pcn = cn_p + t * BH, *ptc = tc_p + t * BH, *pm = m_p + t * BH, *out = out_p + t * BP;
    const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
    const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();

    // The rows run on this thread: the GEMM above is where the threads help; a parallel region per step
    // would wait at its barrier for a descheduled thread whenever the machine is busy.
    for (int64_t b = 0; b < B; ++b) {
      T* a = hh_p + b * GH;  // becomes the pre-activations a = x_gates + LN_h(W_hh h_in)
      const T* x = xg + b * GH;
      if (ln_hh_p) {
        T* normed = hn_p + (t * B + b) * GH;
        hr_p[t * B + b] = layer_norm_row(a, normed, GH);
        for (int64_t j = 0; j < GH; ++j) a[j] = x[j] + normed[j] * ln_hh_p[j];
      } else {
        for (int64_t j = 0; j < GH; ++j) a[j] += x[j];
      }
      const int64_t r = b * H;
      (coupled ? gates_row<T, true> : gates_row<T, false>)(a, cp + r, w_ci_p, w_cf_p, H, pi + r, pf + r, pg + r,
                                                           pcn + r);
      const T* c_hat = pcn + r;  // tanh's argument: c̃, or LN_c(c̃) written into the tanh_c row first
      if (ln_cw_p) {
        T* normed = cnm_p + t * BH + r;
        cr_p[t * B + b] = layer_norm_row(pcn + r, normed, H);
        for (int64_t j = 0; j < H; ++j) ptc[r + j] = normed[j] * ln_cw_p[j] + ln_cb_p[j];
        c_hat = ptc + r;
      }
      output_row(a + GH - H, pcn + r, c_hat, cp + r, w_co_p, kc + r, H, po + r, ptc + r, pm + r, cc + r);
      if (!projection) {  // h_t = m + k (h_prev - m)
        T* h = out + b * P;
        const T *mr = pm + r, *hp = h_prev + b * P, *k = kh + b * P;
        for (int64_t j = 0; j < P; ++j) h[j] = mr[j] + k[j] * (hp[j] - mr[j]);
      }
    }
    if (projection) {
      (*projection)(pm, out);  // (B, P) h̃ = W_hr m
      for (int64_t k = 0; k < BP; ++k) out[k] += kh[k] * (h_prev[k] - out[k]);
    }
  }
  Tensor h_T = output[steps - 1].clone();
  return {output, h_T, c_cur, h_in, c_prev, gi, gf, gg, go, c_new, tanh_c, m, hh_normed, hh_rstd, c_normed, c_rstd};
}

template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h) {
  // cache: the StepCache fields in order (h_in, c_prev, i, f, g, o, c_new, tanh_c, m, hh_normed, hh_rstd,
  // c_normed, c_rstd); the last four only with layer norm.
  const Tensor &c_prev = *cache[1], &gi = *cache[2], &gf = *cache[3], &gg = *cache[4], &go = *cache[5],
               &tanh_c = *cache[7];
  const Tensor hh_normed = cache[9].value_or(Tensor()), hh_rstd = cache[10].value_or(Tensor());
  const Tensor c_normed = cache[11].value_or(Tensor()), c_rstd = cache[12].value_or(Tensor());
  const int64_t steps = d_output.size(0), B = d_output.size(1), P = d_output.size(2), H = c_prev.size(2);
  const int64_t GH = w_hh.size(0), BH = B * H, BP = B * P;
  const bool coupled = GH == 3 * H;
  auto make = [&](std::initializer_list<int64_t> shape) { return at::empty(shape, d_output.options()); };

  Tensor da = make({steps, B, GH}), dh_new = make({steps, B, P}), dc_hat = make({steps, B, H});
  Tensor dhh = ln_hh ? make({steps, B, GH}) : da;
  Tensor dh = dh_T.clone(), dc = dc_T.clone();  // dL/dh_t, dL/dc_t carried back through time
  Tensor dh_total = make({B, P}), dm = make({B, H});
  std::vector<T> dcn(H);  // one row's dL/dc̃ through the hidden path

  const WeightGemm<T> recurrent(w_hh, /*transpose=*/false, B);  // dhh · W_hh
  std::unique_ptr<WeightGemm<T>> projection;                       // dh̃ · W_hr
  if (w_hr) projection = std::make_unique<WeightGemm<T>>(*w_hr, /*transpose=*/false, B);

  const std::vector<T> zeros(std::max({BH, BP, GH}), T(0));
  const T *w_ci_p = data_or_zeros<T>(w_ci, zeros), *w_cf_p = data_or_zeros<T>(w_cf, zeros);
  const T* w_co_p = data_or_zeros<T>(w_co, zeros);
  const T *ln_hh_p = data_or_null<T>(ln_hh), *ln_cw_p = data_or_null<T>(ln_c_w);
  const T *mask_p = data_or_null<T>(mask), *keep_c_p = data_or_null<T>(keep_c), *keep_h_p = data_or_null<T>(keep_h);
  const T *dout_p = d_output.data_ptr<T>(), *gi_p = gi.data_ptr<T>(), *gf_p = gf.data_ptr<T>();
  const T *gg_p = gg.data_ptr<T>(), *go_p = go.data_ptr<T>(), *tc_p = tanh_c.data_ptr<T>();
  const T* cp_p = c_prev.data_ptr<T>();
  const T* cnm_p = ln_c_w ? c_normed.data_ptr<T>() : nullptr;
  const T* cr_p = ln_c_w ? c_rstd.data_ptr<T>() : nullptr;
  const T* hn_p = ln_hh ? hh_normed.data_ptr<T>() : nullptr;
  const T* hr_p = ln_hh ? hh_rstd.data_ptr<T>() : nullptr;
  T *da_p = da.data_ptr<T>(), *dhh_p = dhh.data_ptr<T>(), *dhn_p = dh_new.data_ptr<T>();
  T *dch_p = dc_hat.data_ptr<T>(), *dh_p = dh.data_ptr<T>(), *dc_p = dc.data_ptr<T>();
  T *dt_p = dh_total.data_ptr<T>(), *dm_p = dm.data_ptr<T>();

  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* kh = keep_h_p ? keep_h_p + t * BP : zeros.data();
    const T* kc = keep_c_p ? keep_c_p + t * BH : zeros.data();
    const T* dout = dout_p + t * BP;
    T* dhn = dhn_p + t * BP;
    for (int64_t k = 0; k < BP; ++k) {
      dt_p[k] = dh_p[k] + dout[k];           // this step's output share plus what step t+1 sent back
      dhn[k] = dt_p[k] * (T(1) - kh[k]);     // h_t = k h_{t-1} + (1 - k) h̃_t
    }
    if (projection) (*projection)(dhn, dm_p);  // (B, H)
    const T* dmt = projection ? dm_p : dhn;
    const int64_t s = t * BH;
    T* dat = da_p + t * B * GH;
    T* dhht = dhh_p + t * B * GH;

    for (int64_t b = 0; b < B; ++b) {
      const int64_t r = b * H;
      const T *dmr = dmt + r, *o = go_p + s + r, *tc = tc_p + s + r;
      T* dch = dch_p + s + r;
      for (int64_t j = 0; j < H; ++j) dch[j] = dmr[j] * o[j] * (T(1) - tc[j] * tc[j]);  // dL/dĉ
      for (int64_t j = 0; j < H; ++j) dcn[j] = ln_cw_p ? dch[j] * ln_cw_p[j] : dch[j];
      if (ln_cw_p) layer_norm_backward_row(dcn.data(), cnm_p + s + r, cr_p[t * B + b], H);
      T* a = dat + b * GH;
      (coupled ? gate_grads_row<T, true> : gate_grads_row<T, false>)(
          dmr, dcn.data(), gi_p + s + r, gf_p + s + r, gg_p + s + r, o, tc, cp_p + s + r, w_ci_p, w_cf_p, w_co_p,
          kc + r, H, a, dc_p + r);
      if (ln_hh_p) {
        T* d = dhht + b * GH;
        for (int64_t j = 0; j < GH; ++j) d[j] = a[j] * ln_hh_p[j];
        layer_norm_backward_row(d, hn_p + (t * B + b) * GH, hr_p[t * B + b], GH);
      }
    }
    recurrent(dhht, dh_p);  // (B, P) back through W_hh
    for (int64_t k = 0; k < BP; ++k) dh_p[k] = dh_p[k] * (mask_p ? mask_p[k] : T(1)) + dt_p[k] * kh[k];
  }
  return {dh, dc, da, dhh, dh_new, dc_hat};
}

std::vector<Tensor> lstm_forward(const Tensor& x_gates, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ci, const OptTensor& w_cf,
                                 const OptTensor& w_co, const OptTensor& ln_hh, const OptTensor& ln_c_w,
                                 const OptTensor& ln_c_b, const OptTensor& mask, const OptTensor& keep_c,
                                 const OptTensor& keep_h) {
  TORCH_CHECK(x_gates.dim() == 3 && x_gates.size(0) > 0, "x_gates must be (T, B, G*H) with T > 0");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x_gates.scalar_type(), "lstmkit_forward", [&] {
    result = forward_impl<scalar_t>(x_gates, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, mask,
                                    keep_c, keep_h);
  });
  return result;
}

std::vector<Tensor> lstm_backward(const Tensor& d_output, const Tensor& dh_T, const Tensor& dc_T,
                                  const std::vector<OptTensor>& cache, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ci, const OptTensor& w_cf, const OptTensor& w_co,
                                  const OptTensor& ln_hh, const OptTensor& ln_c_w, const OptTensor& mask,
                                  const OptTensor& keep_c, const OptTensor& keep_h) {
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(d_output.scalar_type(), "lstmkit_backward", [&] {
    result = backward_impl<scalar_t>(d_output, dh_T, dc_T, cache, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w,
                                     mask, keep_c, keep_h);
  });
  return result;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstm_forward, "LSTM recurrence forward (see the shape contract in lstm_cpu.cpp)");
  m.def("backward", &lstm_backward, "LSTM recurrence backward (see the shape contract in lstm_cpu.cpp)");
}
