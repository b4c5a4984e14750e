// Op-level entry points, for parity tests and benchmarks of single ops.
#include <memory>

#include "bindings/bindings.h"
#include "core/attention.h"
#include "core/buffer.h"
#include "core/device.h"
#include "core/lengths.h"
#include "core/lstm_layer.h"
#include "core/machine_probe.h"
#include "core/packed_linear.h"
#include "core/thread_pool.h"

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
  CheckLengths(lengths.data(), batch, steps);
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

py::array_t<float> Linear(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                          const std::string& precision, bool relu, int num_threads) {
  const FloatArray x = ToFloatArray(x_obj, "x"), w = ToFloatArray(w_obj, "w");
  CheckShape(w, "w", {-1, -1});
  CheckShape(x, "x", {-1, w.shape(1)});
  CheckFinite(x, "x");
  CheckFinite(w, "w");
  FloatArray b;
  const float* bias = nullptr;
  if (!b_obj.is_none()) {
    b = ToFloatArray(b_obj, "b");
    CheckShape(b, "b", {w.shape(0)});
    CheckFinite(b, "b");
    bias = b.data();
  }
  const int64_t rows = x.shape(0), out_dim = w.shape(0), in_dim = w.shape(1);
  if (out_dim < 1 || in_dim < 1) throw py::value_error("w must be non-empty, got " + ShapeString(w));
  py::array_t<float> y({rows, out_dim});
  const float* px = x.data();
  float* py_ = y.mutable_data();
  const PackedLinear lin(Device::kCpu, ParseWeightFormat(precision), w.data(), bias, out_dim,
                         in_dim);
  {
    py::gil_scoped_release release;
    ThreadPool pool(num_threads);
    lin.Apply(px, rows, in_dim, py_, out_dim, relu ? Activation::kRelu : Activation::kNone,
              ExecContext{Device::kCpu, &pool, nullptr});
  }
  return y;
}

py::array_t<float> AttentionOp(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                               const py::object& lengths_obj, int64_t num_heads, int64_t q_offset,
                               int64_t window_left, int64_t window_right) {
  const FloatArray q = ToFloatArray(q_obj, "q"), k = ToFloatArray(k_obj, "k"), v = ToFloatArray(v_obj, "v");
  CheckShape(q, "q", {-1, -1, -1});
  const int64_t batch = q.shape(0), width = q.shape(2);
  CheckShape(k, "k", {batch, -1, width});
  CheckShape(v, "v", {batch, k.shape(1), width});
  const IntArray lengths = ToIntArray(lengths_obj, "lengths");
  CheckShape(lengths, "lengths", {batch});
  if (num_heads < 1 || width % num_heads != 0 || q.shape(1) < 1 || k.shape(1) < 1) {
    throw py::value_error("attention: width " + std::to_string(width) + " must divide by num_heads " +
                          std::to_string(num_heads) + " and q, k need >= 1 step, got q" + ShapeString(q) +
                          " k" + ShapeString(k));
  }
  CheckLengths(lengths.data(), batch, k.shape(1));
  AttentionShape s;
  s.batch = batch;
  s.q_steps = q.shape(1);
  s.kv_steps = k.shape(1);
  s.width = width;
  s.heads = num_heads;
  s.q_offset = q_offset;
  s.window_left = window_left;
  s.window_right = window_right;
  py::array_t<float> ctx({batch, s.q_steps, width});
  const AttentionIo io{q.data(), width, k.data(), width, v.data(), width, ctx.mutable_data(), width,
                       lengths.data(), nullptr};
  {
    py::gil_scoped_release release;
    Attention(s, io, ExecContext{});
  }
  return ctx;
}

py::dict ReadBandwidth(int64_t megabytes, int passes, int num_threads) {
  ProbeResult r;
  {
    py::gil_scoped_release release;
    ThreadPool pool(num_threads);
    r = MeasureReadBandwidth(megabytes << 20, passes, &pool);
  }
  py::dict d;
  d["best_gb_per_s"] = r.best;
  d["median_gb_per_s"] = r.median;
  d["megabytes"] = megabytes;
  d["passes"] = passes;
  d["num_threads"] = num_threads;
  return d;
}

py::dict MultiplyAddRate(int passes, int num_threads) {
  ProbeResult r;
  int threads = 0;
  {
    py::gil_scoped_release release;
    ThreadPool pool(num_threads);
    threads = pool.size();
    r = MeasureMultiplyAddRate(passes, &pool);
  }
  py::dict d;
  d["best_gmacs_per_s"] = r.best;
  d["median_gmacs_per_s"] = r.median;
  d["passes"] = passes;
  d["num_threads"] = threads;
  return d;
}

}  // namespace

void BindOps(py::module_& m) {
  m.def("lstm_layer", &LstmLayer, py::arg("x"), py::arg("lengths"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("reverse") = false, py::arg("device") = "cpu",
        "One LSTM layer (PyTorch weight layout, gates i,f,g,o) over padded sequences x[B, T, D] with "
        "lengths[B]; returns h[B, T, H], zero past each length. reverse=True is a BiLSTM's backward half.");
  m.def("linear", &Linear, py::arg("x"), py::arg("w"), py::arg("b") = py::none(), py::arg("precision") = "fp32",
        py::arg("relu") = false, py::arg("num_threads") = 1,
        "CPU PackedLinear: x[N, K] @ w[M, K].T + b with the weights stored as 'fp32', 'bf16' or 'int8' "
        "(per output channel); relu=True fuses a ReLU.");
  m.def("attention", &AttentionOp, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("lengths"),
        py::arg("num_heads"), py::arg("q_offset") = 0, py::arg("window_left") = -1, py::arg("window_right") = -1,
        "CPU masked multi-head attention over projected q[B, Tq, W], k/v[B, Tk, W]: keys j < lengths[b], and "
        "within [p - window_left, p + window_right] of query position p = q_offset + i (-1: unbounded).");
  m.def("read_bandwidth", &ReadBandwidth, py::arg("megabytes") = 512, py::arg("passes") = 5,
        py::arg("num_threads") = 0,
        "Streaming-read memory bandwidth (GB/s) over a buffer of `megabytes`, split over num_threads "
        "(0 = all): dict(best_gb_per_s, median_gb_per_s, ...).");
  m.def("multiply_add_rate", &MultiplyAddRate, py::arg("passes") = 5, py::arg("num_threads") = 0,
        "fp32 multiply-add throughput (G/s) of independent 8-lane vector chains, the arithmetic of the "
        "packed-linear kernels, on num_threads (0 = all): dict(best_gmacs_per_s, median_gmacs_per_s, ...).");
}

}  // namespace cmer_edge
