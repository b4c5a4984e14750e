#include "core/lstm_layer.h"

#include <vector>

#include "core/linear.h"
#include "core/lstm.h"

namespace cmer_edge {

void LstmLayerHost(Device device, const LstmLayerWeights& w, const float* x, const int32_t* lengths,
                   int64_t batch, int64_t steps, bool reverse, float* out) {
  const int64_t hid = w.hidden;
  const int64_t g4 = 4 * hid;
  std::vector<float> bias(g4), w_hh_t(hid * g4);
  for (int64_t j = 0; j < g4; ++j) bias[j] = w.b_ih[j] + w.b_hh[j];
  for (int64_t j = 0; j < g4; ++j) {
    for (int64_t k = 0; k < hid; ++k) w_hh_t[k * g4 + j] = w.w_hh[j * hid + k];
  }
  const LinearShape proj{batch * steps, w.input_dim, g4};
  const LstmShape shape{batch, steps, hid};
  if (device == Device::kCpu) {
    std::vector<float> gates(batch * steps * g4);
    Linear(device, x, w.w_ih, bias.data(), proj, gates.data());
    LstmRecurrence(device, gates.data(), w_hh_t.data(), lengths, shape, reverse, out);
    return;
  }
  RequireCuda("LstmLayerHost");
  DeviceArray<float> d_x(x, batch * steps * w.input_dim);
  DeviceArray<float> d_w_ih(w.w_ih, g4 * w.input_dim);
  DeviceArray<float> d_bias(bias.data(), g4);
  DeviceArray<float> d_w_hh_t(w_hh_t.data(), hid * g4);
  DeviceArray<float> d_gates(batch * steps * g4);
  DeviceArray<float> d_out(batch * steps * hid);
  Linear(device, d_x.data(), d_w_ih.data(), d_bias.data(), proj, d_gates.data());
  LstmRecurrence(device, d_gates.data(), d_w_hh_t.data(), lengths, shape, reverse, d_out.data());
  d_out.Download(out);
}

}  // namespace cmer_edge
