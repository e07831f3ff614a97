// Large buffers (caches, gradients, packed weights), reused between calls.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/accumulate.h>

#include <cstddef>
#include <mutex>
#include <vector>

namespace lstmkit {

using at::Tensor;

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

inline BufferPool& pool() {
  static BufferPool instance;
  return instance;
}

}  // namespace lstmkit
