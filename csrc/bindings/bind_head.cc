// Head and Session: the fused CM-RoBERTa head (core/head.h) for Python.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "core/head.h"
#include "core/lengths.h"

namespace cmer_edge {
namespace {

std::shared_ptr<Head> MakeHead(const HeadConfig& cfg, const py::dict& tensors, const std::string& device,
                               const std::string& precision, int num_threads) {
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
  CheckLengths(lens.data(), batch, steps, "", " for inputs of shape " + ShapeString(keep[0]));
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

// Push (replace = false) or ReplaceLast (replace = true) of one utterance.
py::array_t<float> Push(PySession& s, const py::object& x_a, const py::object& x_t, bool provisional, bool replace) {
  const HeadConfig& c = s.head->config();
  std::vector<FloatArray> keep;
  const float* pa = x_a.is_none() ? nullptr : Input(x_a, c.uses_audio(), "x_a", {c.audio_dim}, &keep);
  const float* pt = x_t.is_none() ? nullptr : Input(x_t, c.uses_text(), "x_t", {c.text_dim}, &keep);
  py::array_t<float> probs(c.num_classes);
  s.last_logits.resize(static_cast<size_t>(c.num_classes));
  float* out = probs.mutable_data();
  {
    py::gil_scoped_release release;
    if (replace) {
      s.session.ReplaceLast(pa, pt, out, s.last_logits.data(), provisional);
    } else {
      s.session.Push(pa, pt, out, s.last_logits.data(), provisional);
    }
  }
  return probs;
}

void BindHeadConfig(py::module_& m) {
  const HeadConfig d;
  py::class_<HeadConfig>(m, "HeadConfig",
                         "The head's shape and switches (core/head_config.h), mirroring "
                         "cmer_edge.model.config.HeadConfig without the training-only dropout.")
      .def(py::init([](int64_t audio_dim, int64_t text_dim, int64_t hidden, int64_t sca_layers, int64_t num_heads,
                       int64_t ffn_dim, int64_t classifier_dim, int64_t num_classes, const std::string& modalities,
                       bool use_sca) {
             HeadConfig c;
             c.audio_dim = audio_dim;
             c.text_dim = text_dim;
             c.hidden = hidden;
             c.sca_layers = sca_layers;
             c.num_heads = num_heads;
             c.ffn_dim = ffn_dim;
             c.classifier_dim = classifier_dim;
             c.num_classes = num_classes;
             c.modalities = modalities;
             c.use_sca = use_sca;
             c.Validate();
             return c;
           }),
           py::kw_only(), py::arg("audio_dim") = d.audio_dim, py::arg("text_dim") = d.text_dim,
           py::arg("hidden") = d.hidden, py::arg("sca_layers") = d.sca_layers, py::arg("num_heads") = d.num_heads,
           py::arg("ffn_dim") = d.ffn_dim, py::arg("classifier_dim") = d.classifier_dim,
           py::arg("num_classes") = d.num_classes, py::arg("modalities") = d.modalities,
           py::arg("use_sca") = d.use_sca, "Keyword arguments only; validated (ValueError naming the field).")
      .def_readwrite("audio_dim", &HeadConfig::audio_dim)
      .def_readwrite("text_dim", &HeadConfig::text_dim)
      .def_readwrite("hidden", &HeadConfig::hidden)
      .def_readwrite("sca_layers", &HeadConfig::sca_layers)
      .def_readwrite("num_heads", &HeadConfig::num_heads)
      .def_readwrite("ffn_dim", &HeadConfig::ffn_dim)
      .def_readwrite("classifier_dim", &HeadConfig::classifier_dim)
      .def_readwrite("num_classes", &HeadConfig::num_classes)
      .def_readwrite("modalities", &HeadConfig::modalities)
      .def_readwrite("use_sca", &HeadConfig::use_sca)
      .def("validate", &HeadConfig::Validate, "Raises ValueError naming the first bad field.")
      .def("__repr__", &HeadConfig::ToString)
      .def("__eq__", [](const HeadConfig& a, const HeadConfig& b) { return a.ToString() == b.ToString(); })
      .def_property_readonly("num_branches", &HeadConfig::num_branches)
      .def_property_readonly("width", &HeadConfig::width);
}

// Test-only hooks (cmer_edge._native.testing): fault injection for the exception-safety tests and a
// way to put a head in the disabled state a CUDA error leaves, so the fallback paths run on CPU.
void BindTesting(py::module_& m) {
  py::module_ t = m.def_submodule("testing", "Test-only hooks; not part of the API.");
  t.def(
      "inject_session_fault",
      [](PySession& s, int stage) {
        if (stage < 1 || stage > 3) throw py::value_error("stage must be 1, 2 or 3, got " + std::to_string(stage));
        s.session.InjectFaultForTesting(stage);
      },
      py::arg("session"), py::arg("stage"),
      "The session's next push/replace_last raises RuntimeError at stage 1 (projecting), 2 (window changed) or 3 "
      "(scored).");
  t.def(
      "disable_head", [](const Head& h, const std::string& reason) { h.Disable(reason); }, py::arg("head"),
      py::arg("reason"), "Put the head in the state a CUDA error leaves: every later call raises CudaError.");
}

}  // namespace

void BindHead(py::module_& m) {
  py::register_exception<CudaError>(m, "CudaError", PyExc_RuntimeError);
  BindHeadConfig(m);
  py::class_<Head, std::shared_ptr<Head>>(m, "Head",
                                          "The fused CM-RoBERTa head on CPU or CUDA, built from PyTorch state-dict "
                                          "tensors (see cmer_edge.runtime.head.NativeHead for the Python API).")
      .def(py::init(&MakeHead), py::arg("config"), py::arg("tensors"), py::arg("device") = "cpu",
           py::arg("precision") = "fp32", py::arg("num_threads") = 0,
           "config: a _native.HeadConfig; tensors: state-dict name -> float array; precision of the large input "
           "projections: 'fp32' | 'bf16' | 'int8'; num_threads: CPU threads (0 = all).")
      .def("forward", &Forward, py::arg("x_a"), py::arg("x_t"), py::arg("lengths"), py::arg("present") = py::none(),
           "x_a [B, T, audio_dim], x_t [B, T, text_dim] (None for a modality the config does not use), lengths [B], "
           "present [B, T, 2] or None -> logits [B, T, num_classes].")
      .def_property_readonly("config", [](const Head& h) { return h.config(); }, "A copy of the head's HeadConfig.")
      .def_property_readonly("disabled", &Head::disabled,
                             "True after a CUDA error: every later forward/push raises CudaError.")
      .def_property_readonly("disabled_reason", &Head::disabled_reason, "The first CUDA error's text, or ''.")
      .def_property_readonly("device", [](const Head& h) { return DeviceName(h.options().device); })
      .def_property_readonly("precision", [](const Head& h) { return WeightFormatName(h.options().input_format); })
      .def_property_readonly("num_threads", &Head::num_threads)
      .def_property_readonly("weight_bytes", &Head::weight_bytes,
                             "Bytes of weights as stored: what one live push reads with every modality present.");
  py::class_<PySession>(m, "Session", "Live session over a Head: push one utterance at a time.")
      .def(py::init<std::shared_ptr<Head>, int64_t, bool>(), py::arg("head"), py::arg("window_utts"),
           py::arg("cuda_graph") = false,
           "cuda_graph=True (CUDA heads): record each distinct push once as a CUDA graph and replay it.")
      .def(
          "push",
          [](PySession& s, const py::object& x_a, const py::object& x_t, bool provisional) {
            return Push(s, x_a, x_t, provisional, /*replace=*/false);
          },
          py::arg("x_a"), py::arg("x_t"), py::arg("provisional") = false,
          "x_a [audio_dim], x_t [text_dim] (None = modality missing: zeros after normalisation, as PyTorch's "
          "present = 0; both None is accepted and takes a window place like present = (0, 0)) -> probs "
          "[num_classes]. provisional=True: replace_last may replace this utterance's inputs later.")
      .def(
          "replace_last",
          [](PySession& s, const py::object& x_a, const py::object& x_t, bool provisional) {
            return Push(s, x_a, x_t, provisional, /*replace=*/true);
          },
          py::arg("x_a"), py::arg("x_t"), py::arg("provisional") = false,
          "Replace the inputs of the newest utterance (pushed with provisional=True; RuntimeError otherwise) and "
          "re-score: the window is then exactly as if these inputs had been pushed. pushed/size unchanged. "
          "provisional=True keeps it replaceable.")
      .def("reset", [](PySession& s) { s.session.Reset(); }, "Forget the conversation.")
      .def_property_readonly("provisional", [](const PySession& s) { return s.session.last_provisional(); },
                             "True while the newest utterance came from a provisional push (replaceable).")
      .def_property_readonly("window_utts", [](const PySession& s) { return s.session.window_utts(); })
      .def_property_readonly("size", [](const PySession& s) { return s.session.size(); })
      .def_property_readonly("pushed", [](const PySession& s) { return s.session.pushed(); })
      .def_property_readonly("cuda_graph", [](const PySession& s) { return s.session.cuda_graph(); })
      .def_property_readonly("last_logits", [](const PySession& s) {
        return py::array_t<float>(static_cast<py::ssize_t>(s.last_logits.size()), s.last_logits.data());
      });
  BindTesting(m);
}

}  // namespace cmer_edge
