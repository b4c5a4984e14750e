// CPU LSTM recurrence. Per step: gates = gates_x[t] + Σ_k h[k] · W_hhᵀ[k, :] (an axpy per k over
// 4H contiguous floats, vectorised), then the fused elementwise cell update.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/lstm.h"

namespace cmer_edge {
namespace {

inline float Sigmoid(float v) { return 1.f / (1.f + std::exp(-v)); }

}  // namespace

void LstmRecurrenceCpu(const float* gates_x, const float* w_hh_t, const int32_t* lengths, LstmShape shape,
                       bool reverse, float* out) {
  const int64_t hid = shape.hidden;
  const int64_t g4 = 4 * hid;
  std::vector<float> h(hid), c(hid), gates(g4);
  for (int64_t b = 0; b < shape.batch; ++b) {
    const int64_t len = lengths[b];
    const float* gx = gates_x + b * shape.steps * g4;
    float* ob = out + b * shape.steps * hid;
    std::fill(h.begin(), h.end(), 0.f);
    std::fill(c.begin(), c.end(), 0.f);
    for (int64_t s = 0; s < len; ++s) {
      const int64_t t = reverse ? len - 1 - s : s;
      std::memcpy(gates.data(), gx + t * g4, g4 * sizeof(float));
      float* gp = gates.data();
      for (int64_t k = 0; k < hid; ++k) {
        const float hk = h[k];
        const float* wk = w_hh_t + k * g4;
#pragma omp simd
        for (int64_t j = 0; j < g4; ++j) gp[j] += hk * wk[j];
      }
      float* ot = ob + t * hid;
      for (int64_t j = 0; j < hid; ++j) {
        const float i_gate = Sigmoid(gp[j]);
        const float f_gate = Sigmoid(gp[hid + j]);
        const float g_gate = std::tanh(gp[2 * hid + j]);
        const float o_gate = Sigmoid(gp[3 * hid + j]);
        c[j] = f_gate * c[j] + i_gate * g_gate;
        h[j] = o_gate * std::tanh(c[j]);
        ot[j] = h[j];
      }
    }
    std::memset(ob + len * hid, 0, (shape.steps - len) * hid * sizeof(float));
  }
}

}  // namespace cmer_edge
