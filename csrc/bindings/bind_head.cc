// Head and Session: the fused CM-RoBERTa head (core/head.h) for Python.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "core/head.h"

namespace cmer_edge {
namespace {

HeadConfig ConfigFromDict(const py::dict& d) {
  HeadConfig c;
  std::map<std::string, int64_t*> ints = {
      {"audio_dim", &c.audio_dim}, {"text_dim", &c.text_dim},   {"hidden", &c.hidden},
      {"sca_layers", &c.sca_layers}, {"num_heads", &c.num_heads}, {"ffn_dim", &c.ffn_dim},
      {"classifier_dim", &c.classifier_dim}, {"num_classes", &c.num_classes}};
  for (const auto& [key, value] : d) {
    const std::string k = py::str(key);
    if (ints.count(k)) {
      *ints[k] = value.cast<int64_t>();
    } else if (k == "modalities") {
      c.modalities = value.cast<std::string>();
    } else if (k == "use_sca") {
      c.use_sca = value.cast<bool>();
    } else if (k != "dropout") {  // training only
      throw py::value_error("head config: unknown key '" + k + "'");
    }
  }
  return c;
}

py::dict ConfigToDict(const HeadConfig& c) {
  py::dict d;
  d["audio_dim"] = c.audio_dim;
  d["text_dim"] = c.text_dim;
  d["hidden"] = c.hidden;
  d["sca_layers"] = c.sca_layers;
  d["num_heads"] = c.num_heads;
  d["ffn_dim"] = c.ffn_dim;
  d["classifier_dim"] = c.classifier_dim;
  d["num_classes"] = c.num_classes;
  d["modalities"] = c.modalities;
  d["use_sca"] = c.use_sca;
  return d;
}

std::shared_ptr<Head> MakeHead(const py::dict& config, const py::dict& tensors, const std::string& device,
                               const std::string& precision, int num_threads) {
  const HeadConfig cfg = ConfigFromDict(config);
  const HeadOptions opts{ParseDevice(device), ParseWeightFormat(precision), num_threads};
  std::vector<FloatArray> keep;
  TensorMap map;
  for (const auto& [key, value] : tensors) {
    const std::string name = py::str(key);
    keep.push_back(ToFloatArray(value, name.c_str()));
    const FloatArray& a = keep.back();
    CheckFinite(a, name.c_str());
    map[name] = TensorView{a.data(), std::vector<int64_t>(a.shape(), a.shape() + a.ndim())};
  }
  py::gil_scoped_release release;
  return std::make_shared<Head>(cfg, map, opts);
}

// x for a modality the head uses: [expected...] float, finite. Unused modality: ignored.
const float* Input(const py::object& obj, bool used, const char* name, const std::vector<int64_t>& shape,
                   std::vector<FloatArray>* keep) {
  if (!used) return nullptr;
  if (obj.is_none()) throw py::value_error(std::string(name) + " is required by this head's config, got None");
  keep->push_back(ToFloatArray(obj, name));
  CheckShape(keep->back(), name, shape);
  CheckFinite(keep->back(), name);
  return keep->back().data();
}

py::array_t<float> Forward(Head& head, const py::object& x_a, const py::object& x_t, const py::object& lengths,
                           const py::object& present) {
  const HeadConfig& c = head.config();
  std::vector<FloatArray> keep;
  // The first modality the head uses fixes B and T; the other must match.
  const bool audio_first = c.uses_audio();
  Input(audio_first ? x_a : x_t, true, audio_first ? "x_a" : "x_t",
        {-1, -1, audio_first ? c.audio_dim : c.text_dim}, &keep);
  const int64_t batch = keep[0].shape(0), steps = keep[0].shape(1);
  const float* pa = audio_first ? keep[0].data() : nullptr;
  const float* pt = audio_first ? Input(x_t, c.uses_text(), "x_t", {batch, steps, c.text_dim}, &keep)
                                : keep[0].data();
  const IntArray lens = ToIntArray(lengths, "lengths");
  CheckShape(lens, "lengths", {batch});
  const float* pp = nullptr;
  if (!present.is_none()) {
    keep.push_back(ToFloatArray(present, "present"));
    CheckShape(keep.back(), "present", {batch, steps, 2});
    CheckFinite(keep.back(), "present");
    pp = keep.back().data();
  }
  if (batch < 1 || steps < 1) {
    throw py::value_error("inputs must hold at least one utterance, got shape " + ShapeString(keep[0]));
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (lens.data()[b] < 1 || lens.data()[b] > steps) {
      throw py::value_error("lengths[" + std::to_string(b) + "]=" + std::to_string(lens.data()[b]) + " outside 1.." +
                            std::to_string(steps) + " for inputs of shape " + ShapeString(keep[0]));
    }
  }
  py::array_t<float> logits({batch, steps, c.num_classes});
  float* out = logits.mutable_data();
  const int32_t* pl = lens.data();
  {
    py::gil_scoped_release release;
    head.Forward(pa, pt, pl, pp, batch, steps, out);
  }
  return logits;
}

struct PySession {
  PySession(std::shared_ptr<Head> h, int64_t window, bool cuda_graph)
      : head(std::move(h)), session(*head, window, cuda_graph) {}
  std::shared_ptr<Head> head;  // keeps the weights alive
  Session session;
  std::vector<float> last_logits;
};

py::array_t<float> Push(PySession& s, const py::object& x_a, const py::object& x_t) {
  const HeadConfig& c = s.head->config();
  std::vector<FloatArray> keep;
  const float* pa = x_a.is_none() ? nullptr : Input(x_a, c.uses_audio(), "x_a", {c.audio_dim}, &keep);
  const float* pt = x_t.is_none() ? nullptr : Input(x_t, c.uses_text(), "x_t", {c.text_dim}, &keep);
  py::array_t<float> probs(c.num_classes);
  s.last_logits.resize(static_cast<size_t>(c.num_classes));
  float* out = probs.mutable_data();
  {
    py::gil_scoped_release release;
    s.session.Push(pa, pt, out, s.last_logits.data());
  }
  return probs;
}

}  // namespace

void BindHead(py::module_& m) {
  py::class_<Head, std::shared_ptr<Head>>(m, "Head",
                                          "The fused CM-RoBERTa head on CPU or CUDA, built from PyTorch state-dict "
                                          "tensors (see cmer_edge.runtime.head.NativeHead for the Python API).")
      .def(py::init(&MakeHead), py::arg("config"), py::arg("tensors"), py::arg("device") = "cpu",
           py::arg("precision") = "fp32", py::arg("num_threads") = 0,
           "config: HeadConfig.to_dict(); tensors: state-dict name -> float array; precision of the large input "
           "projections: 'fp32' | 'bf16' | 'int8'; num_threads: CPU threads (0 = all).")
      .def("forward", &Forward, py::arg("x_a"), py::arg("x_t"), py::arg("lengths"), py::arg("present") = py::none(),
           "x_a [B, T, audio_dim], x_t [B, T, text_dim] (None for a modality the config does not use), lengths [B], "
           "present [B, T, 2] or None -> logits [B, T, num_classes].")
      .def_property_readonly("config", [](const Head& h) { return ConfigToDict(h.config()); })
      .def_property_readonly("device", [](const Head& h) { return DeviceName(h.options().device); })
      .def_property_readonly("precision", [](const Head& h) { return WeightFormatName(h.options().input_format); })
      .def_property_readonly("num_threads", &Head::num_threads)
      .def_property_readonly("weight_bytes", &Head::weight_bytes,
                             "Bytes of weights as stored: what one live push reads with every modality present.");
  py::class_<PySession>(m, "Session", "Live session over a Head: push one utterance at a time.")
      .def(py::init<std::shared_ptr<Head>, int64_t, bool>(), py::arg("head"), py::arg("window_utts"),
           py::arg("cuda_graph") = false,
           "cuda_graph=True (CUDA heads): record each distinct push once as a CUDA graph and replay it.")
      .def("push", &Push, py::arg("x_a"), py::arg("x_t"),
           "x_a [audio_dim], x_t [text_dim] (None = modality missing) -> probs [num_classes].")
      .def("reset", [](PySession& s) { s.session.Reset(); }, "Forget the conversation.")
      .def_property_readonly("window_utts", [](const PySession& s) { return s.session.window_utts(); })
      .def_property_readonly("size", [](const PySession& s) { return s.session.size(); })
      .def_property_readonly("pushed", [](const PySession& s) { return s.session.pushed(); })
      .def_property_readonly("cuda_graph", [](const PySession& s) { return s.session.cuda_graph(); })
      .def_property_readonly("last_logits", [](const PySession& s) {
        return py::array_t<float>(static_cast<py::ssize_t>(s.last_logits.size()), s.last_logits.data());
      });
}

}  // namespace cmer_edge
