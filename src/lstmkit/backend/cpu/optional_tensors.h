// Reading the optional tensors (? in the shape contract, None when the variant is off) as pointers.
#pragma once

#include <vector>

#include "lstm_cpu.h"

namespace lstmkit {

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

}  // namespace lstmkit
