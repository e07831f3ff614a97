// A ragged batch: rows sorted by length, longest first, and step t runs the first batch_sizes[t] of them.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>

#include "lstm_cpu.h"

namespace lstmkit {

// batch_sizes (T,) int64, non-increasing, each in [0, B]: checked once, outside the parallel region.
inline void check_batch_sizes(const OptTensor& sizes, int64_t steps, int64_t batch) {
  if (!sizes) return;
  TORCH_CHECK(sizes->dim() == 1 && sizes->size(0) == steps && sizes->scalar_type() == at::kLong &&
                  sizes->is_contiguous(),
              "batch_sizes must be a contiguous (T,) int64 tensor");
  const int64_t* n = sizes->data_ptr<int64_t>();
  for (int64_t t = 0; t < steps; ++t)
    TORCH_CHECK(n[t] >= 0 && n[t] <= batch && (t == 0 || n[t] <= n[t - 1]), "batch_sizes must be non-increasing in [0, B]");
}

// Active rows per step: all B, or batch_sizes[t] of a batch sorted by length, longest first (ragged).
struct Active {
  const int64_t* sizes;
  int64_t batch;
  int64_t at(int64_t t) const { return sizes ? sizes[t] : batch; }
};

}  // namespace lstmkit
