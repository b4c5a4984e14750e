#include "core/lstm_layer.h"

#include <vector>

#include "core/buffer.h"
#include "core/lstm.h"
#include "core/packed_linear.h"

namespace cmer_edge {

void LstmLayerHost(Device device, const LstmLayerWeights& w, const float* x, const int32_t* lengths,
                   int64_t batch, int64_t steps, bool reverse, float* out) {
  const int64_t hid = w.hidden;
  const int64_t g4 = 4 * hid;
  const int64_t rows = batch * steps;
  std::vector<float> bias(g4);
  for (int64_t j = 0; j < g4; ++j) bias[j] = w.b_ih[j] + w.b_hh[j];
  void* stream = device == Device::kCuda ? CreateStream() : nullptr;
  struct StreamGuard {
    void* s;
    ~StreamGuard() { DestroyStream(s); }
  } guard{stream};
  const ExecContext ctx{device, nullptr, stream};
  const PackedLinear w_ih(device, WeightFormat::kF32, w.w_ih, bias.data(), g4, w.input_dim);
  const LstmWeights w_hh(device, w.w_hh, hid);
  Buffer<float> d_x(device, x, static_cast<size_t>(rows * w.input_dim));
  Buffer<float> d_gates(device, static_cast<size_t>(rows * g4));
  Buffer<float> d_out(device, static_cast<size_t>(rows * hid));
  Buffer<int32_t> d_lengths(device, lengths, static_cast<size_t>(batch));
  w_ih.Apply(d_x.data(), rows, w.input_dim, d_gates.data(), g4, Activation::kNone, ctx);
  const LstmSequences seq{batch, steps, lengths, device == Device::kCuda ? d_lengths.data() : nullptr};
  const LstmDirection dir{&w_hh, d_gates.data(), g4, d_out.data(), hid, reverse};
  LstmRecurrence(seq, &dir, 1, ctx);
  d_out.CopyToHost(out, static_cast<size_t>(rows * hid), 0, stream);
}

}  // namespace cmer_edge
