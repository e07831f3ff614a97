// The Python module: the entry points of lstm_cpu.h under their Python names.
//
// torch/csrc/utils/pybind.h is the part of torch/extension.h that this file needs (pybind11 and its casters
// for Tensor); the whole of torch/extension.h (the C++ frontend) takes four times as long to compile.
#include <torch/csrc/utils/pybind.h>

#include "lstm_cpu.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstmkit::lstm_forward, "LSTM recurrence forward (see the shape contract in lstm_cpu.h)");
  m.def("backward", &lstmkit::lstm_backward, "LSTM recurrence backward (see the shape contract in lstm_cpu.h)");
  m.def("step", &lstmkit::lstm_step, "one step through all layers, inference (streaming; see step.h)");
  m.def("matmul", &lstmkit::matmul, "a (M, K) · b (K, N) (+ bias) for CPU tensors, tiled over ATen's threads");
  m.def("layer_norm", &lstmkit::layer_norm, "layer norm over the rows of a matrix, with (mean, rstd) per row");
  m.def("layer_norm_backward", &lstmkit::layer_norm_backward, "layer_norm's backward: dx and the gain's gradient");
  m.def("matmul_tn", &lstmkit::matmul_tn, "a^T · b for a (K, M), b (K, N) CPU tensors, tiled over ATen's threads");
}
