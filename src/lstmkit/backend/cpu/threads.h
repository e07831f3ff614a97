// Threads inside the time loop: one parallel region for all T steps, shares of rows and panels, a spin barrier.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>

namespace lstmkit {

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

inline thread_local SpinBarrier* current_barrier = nullptr;  // the loop this thread works in, if threaded

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

}  // namespace lstmkit
