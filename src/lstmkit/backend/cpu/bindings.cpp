// The Python module: the entry points of lstm_cpu.h under their Python names, every argument by name.
//
// torch/csrc/utils/pybind.h is the part of torch/extension.h that this file needs (pybind11 and its casters
// for Tensor); the whole of torch/extension.h (the C++ frontend) takes four times as long to compile.
#include <torch/csrc/utils/pybind.h>

#include <string>
#include <utility>
#include <vector>

#include "lstm_cpu.h"

namespace py = pybind11;
using lstmkit::OptTensor;
using lstmkit::StepCache;
using lstmkit::StepGrads;
using lstmkit::Tensor;

namespace {

// Each field's name and member, in the order of its list in lstm_cpu.h (the order of the Python lists).
template <typename Fields>
using FieldList = std::vector<std::pair<const char*, Tensor Fields::*>>;

#define LSTMKIT_FIELD_ENTRY(name) {#name, &Fields::name},

template <typename Fields>
const FieldList<Fields>& fields();

template <>
const FieldList<StepCache>& fields() {
  using Fields = StepCache;
  static const FieldList<StepCache> list{LSTMKIT_STEP_CACHE_FIELDS(LSTMKIT_FIELD_ENTRY)};
  return list;
}

template <>
const FieldList<StepGrads>& fields() {
  using Fields = StepGrads;
  static const FieldList<StepGrads> list{LSTMKIT_STEP_GRADS_FIELDS(LSTMKIT_FIELD_ENTRY)};
  return list;
}

#undef LSTMKIT_FIELD_ENTRY

template <typename Fields>
std::vector<std::string> field_names() {
  std::vector<std::string> names;
  for (const auto& field : fields<Fields>()) names.emplace_back(field.first);
  return names;
}

}  // namespace

namespace pybind11::detail {

// StepCache and StepGrads as Python lists in their fields' order, None for an undefined (absent) field.
template <typename Fields>
struct fields_caster {
  PYBIND11_TYPE_CASTER(Fields, const_name("list[torch.Tensor | None]"));

  bool load(handle src, bool convert) {
    make_caster<std::vector<OptTensor>> items;
    if (!items.load(src, convert)) return false;
    const auto& list = cast_op<const std::vector<OptTensor>&>(items);
    const auto& members = fields<Fields>();
    if (list.size() != members.size()) {
      throw value_error("expected a list of " + std::to_string(members.size()) + " fields, got " +
                        std::to_string(list.size()));
    }
    for (size_t k = 0; k < members.size(); ++k) value.*members[k].second = list[k].value_or(Tensor());
    return true;
  }

  static handle cast(const Fields& src, return_value_policy, handle) {
    const auto& members = fields<Fields>();
    list out(members.size());
    for (size_t k = 0; k < members.size(); ++k) {
      const Tensor& t = src.*members[k].second;
      out[k] = t.defined() ? pybind11::cast(t) : none();
    }
    return out.release();
  }
};

template <>
struct type_caster<StepCache> : fields_caster<StepCache> {};
template <>
struct type_caster<StepGrads> : fields_caster<StepGrads> {};

}  // namespace pybind11::detail

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using py::arg;
  m.def("step_cache_fields", &field_names<StepCache>, "the StepCache lists' field names, in order");
  m.def("step_grads_fields", &field_names<StepGrads>, "the StepGrads lists' field names, in order");
  // The arguments' names in the order of the C++ parameters (lstm_cpu.h); Python passes them by name only.
  m.def("forward", &lstmkit::lstm_forward, "LSTM recurrence forward (see the shape contract in lstm_cpu.h)",
        py::kw_only(), arg("x_gates"), arg("h0"), arg("c0"), arg("w_hh"), arg("w_hr"), arg("w_ci"),
        arg("w_cf"), arg("w_co"), arg("ln_hh"), arg("ln_c_w"), arg("ln_c_b"),
        arg("mask"), arg("keep_c"), arg("keep_h"), arg("batch_sizes"), arg("record"),
        arg("w_ih"), arg("bias"));
  m.def("backward", &lstmkit::lstm_backward, "LSTM recurrence backward (see the shape contract in lstm_cpu.h)",
        py::kw_only(), arg("d_output"), arg("dh_T"), arg("dc_T"), arg("cache"), arg("w_hh"), arg("w_hr"),
        arg("w_ci"), arg("w_cf"), arg("w_co"), arg("ln_hh"), arg("ln_c_w"),
        arg("mask"), arg("keep_c"), arg("keep_h"), arg("batch_sizes"));
  py::class_<lstmkit::StepLayer>(m, "StepLayer", "one layer's weights for step (see lstm_cpu.h)")
      .def(py::init([](OptTensor w_ih, OptTensor w_hh, OptTensor w_cat_vnni, OptTensor bias_ih, OptTensor bias_hh,
                       OptTensor w_hr, OptTensor w_hr_vnni, OptTensor w_ci, OptTensor w_cf, OptTensor w_co) {
             return lstmkit::StepLayer{.w_ih = std::move(w_ih), .w_hh = std::move(w_hh),
                                       .w_cat_vnni = std::move(w_cat_vnni), .bias_ih = std::move(bias_ih),
                                       .bias_hh = std::move(bias_hh), .w_hr = std::move(w_hr),
                                       .w_hr_vnni = std::move(w_hr_vnni), .w_ci = std::move(w_ci),
                                       .w_cf = std::move(w_cf), .w_co = std::move(w_co)};
           }),
           py::kw_only(), arg("w_ih") = py::none(), arg("w_hh") = py::none(), arg("w_cat_vnni") = py::none(),
           arg("bias_ih") = py::none(), arg("bias_hh") = py::none(), arg("w_hr") = py::none(),
           arg("w_hr_vnni") = py::none(), arg("w_ci") = py::none(), arg("w_cf") = py::none(),
           arg("w_co") = py::none());
  m.def("step", &lstmkit::lstm_step, "one step through all layers, inference (streaming; see step.h)",
        py::kw_only(), arg("x"), arg("h"), arg("c"), arg("layers"), arg("zoneout_c"), arg("zoneout_h"));
  m.def("bf16_products", &lstmkit::bf16_products, "whether this CPU multiplies bf16 operands (the bf16 loops)");
  m.def("matmul", &lstmkit::matmul, "a (M, K) · b (K, N) (+ bias) for CPU tensors, tiled over ATen's threads",
        py::kw_only(), arg("a"), arg("b"), arg("bias"));
  m.def("matmul_tn", &lstmkit::matmul_tn, "a^T · b for a (K, M), b (K, N) CPU tensors, tiled over ATen's threads",
        py::kw_only(), arg("a"), arg("b"));
  m.def("layer_norm", &lstmkit::layer_norm, "layer norm over the rows of a matrix, with (mean, rstd) per row",
        py::kw_only(), arg("x"), arg("gain"), arg("bias"));
  m.def("layer_norm_backward", &lstmkit::layer_norm_backward, "layer_norm's backward: dx and the gain's gradient",
        py::kw_only(), arg("dy"), arg("x"), arg("stats"), arg("gain"));
}
