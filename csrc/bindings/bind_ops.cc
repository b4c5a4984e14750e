// Op-level entry points, for parity tests and benchmarks of single ops.
#include "bindings/bindings.h"
#include "core/device.h"
#include "core/lstm_layer.h"

namespace cmer_edge {
namespace {

py::array_t<float> LstmLayer(const FloatArray& x, const IntArray& lengths, const FloatArray& w_ih,
                             const FloatArray& w_hh, const FloatArray& b_ih, const FloatArray& b_hh,
                             bool reverse, const std::string& device) {
  const Device dev = ParseDevice(device);
  CheckShape(x, "x", {-1, -1, -1});
  const int64_t batch = x.shape(0), steps = x.shape(1), dim = x.shape(2);
  CheckShape(w_hh, "w_hh", {-1, -1});
  const int64_t hid = w_hh.shape(1);
  CheckShape(w_hh, "w_hh", {4 * hid, hid});
  CheckShape(w_ih, "w_ih", {4 * hid, dim});
  CheckShape(b_ih, "b_ih", {4 * hid});
  CheckShape(b_hh, "b_hh", {4 * hid});
  CheckShape(lengths, "lengths", {batch});
  if (steps < 1 || dim < 1 || hid < 1) throw py::value_error("x and w_hh must be non-empty, got x" + ShapeString(x));
  CheckFinite(x, "x");
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t len = lengths.data()[b];
    if (len < 1 || len > steps) {
      throw py::value_error("lengths[" + std::to_string(b) + "]=" + std::to_string(len) + " outside 1.." +
                            std::to_string(steps));
    }
  }
  py::array_t<float> out({batch, steps, hid});
  const LstmLayerWeights weights{w_ih.data(), w_hh.data(), b_ih.data(), b_hh.data(), dim, hid};
  const float* px = x.data();
  const int32_t* plen = lengths.data();
  float* pout = out.mutable_data();
  {
    py::gil_scoped_release release;
    LstmLayerHost(dev, weights, px, plen, batch, steps, reverse, pout);
  }
  return out;
}

}  // namespace

void BindOps(py::module_& m) {
  m.def("lstm_layer", &LstmLayer, py::arg("x"), py::arg("lengths"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("reverse") = false, py::arg("device") = "cpu",
        "One LSTM layer (PyTorch weight layout, gates i,f,g,o) over padded sequences x[B, T, D] with "
        "lengths[B]; returns h[B, T, H], zero past each length. reverse=True is a BiLSTM's backward half.");
}

}  // namespace cmer_edge
