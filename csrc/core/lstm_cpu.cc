// CPU LSTM recurrence. Per step: the hidden states of every sequence still running are gathered
// into one [active, H] matrix, multiplied by W_hhᵀ in one fused-gate PackedLinear (all 4H gates at
// once), then each row gets its input gates added and the cell update, vectorised 8 lanes wide with
// the simd.h sigmoid/tanh.
#include <cstring>
#include <vector>

#include "core/lstm.h"
#include "core/simd.h"

namespace cmer_edge {
namespace {

using simd::F8;

// Adds gx into gates[0, n) and applies f in place: independent 8-lane chunks with short bodies, so
// the out-of-order core overlaps several exp/divide chains instead of waiting on one.
template <typename VecFn, typename ScalarFn>
void AddActivate(float* gates, const float* gx, int64_t n, VecFn f, ScalarFn f_scalar) {
  int64_t j = 0;
  for (; j + simd::kLanes <= n; j += simd::kLanes) {
    simd::Store(gates + j, f(simd::Load(gates + j) + simd::Load(gx + j)));
  }
  for (; j < n; ++j) gates[j] = f_scalar(gates[j] + gx[j]);
}

// gates (4H, W_hh·h already in) += gx, activated (σ for i, f, o; tanh for g); then c, h updated in
// place and h copied to out.
void CellUpdate(float* gates, const float* gx, int64_t hid, float* c, float* h, float* out) {
  const auto sigmoid = [](F8 v) { return simd::Sigmoid(v); };
  const auto tanh = [](F8 v) { return simd::Tanh(v); };
  AddActivate(gates, gx, 2 * hid, sigmoid, simd::SigmoidScalar);                      // i, f
  AddActivate(gates + 2 * hid, gx + 2 * hid, hid, tanh, simd::TanhScalar);            // g
  AddActivate(gates + 3 * hid, gx + 3 * hid, hid, sigmoid, simd::SigmoidScalar);      // o
  const float *ig = gates, *fg = gates + hid, *gg = gates + 2 * hid, *og = gates + 3 * hid;
  int64_t j = 0;
  for (; j + simd::kLanes <= hid; j += simd::kLanes) {
    const F8 cn = simd::Load(fg + j) * simd::Load(c + j) + simd::Load(ig + j) * simd::Load(gg + j);
    const F8 hn = simd::Load(og + j) * simd::Tanh(cn);
    simd::Store(c + j, cn);
    simd::Store(h + j, hn);
    simd::Store(out + j, hn);
  }
  for (; j < hid; ++j) {
    c[j] = fg[j] * c[j] + ig[j] * gg[j];
    h[j] = og[j] * simd::TanhScalar(c[j]);
    out[j] = h[j];
  }
}

}  // namespace

void LstmRecurrenceCpu(const LstmSequences& seq, const LstmDirection& dir, ThreadPool* pool) {
  const int64_t hid = dir.weights->hidden();
  const int64_t g4 = 4 * hid;
  const int64_t batch = seq.batch;
  std::vector<float> h(batch * hid, 0.f), c(batch * hid, 0.f), hc(batch * hid), gates(batch * g4);
  std::vector<int64_t> active(batch);
  const ExecContext ctx{Device::kCpu, pool, nullptr};
  for (int64_t s = 0;; ++s) {
    int64_t n = 0;
    for (int64_t b = 0; b < batch; ++b) {
      if (seq.lengths[b] > s) active[n++] = b;
    }
    if (n == 0) break;
    const float* hin = h.data();
    if (n != batch) {  // compact the running sequences' states
      for (int64_t i = 0; i < n; ++i) std::memcpy(&hc[i * hid], &h[active[i] * hid], hid * sizeof(float));
      hin = hc.data();
    }
    dir.weights->packed().Apply(hin, n, hid, gates.data(), g4, Activation::kNone, ctx);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = active[i];
      const int64_t len = seq.lengths[b];
      const int64_t row = b * seq.steps + (dir.reverse ? len - 1 - s : s);
      CellUpdate(&gates[i * g4], dir.gates_x + row * dir.ld_gates, hid, &c[b * hid], &h[b * hid],
                 dir.out + row * dir.ld_out);
    }
  }
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = seq.lengths[b]; t < seq.steps; ++t) {
      std::memset(dir.out + (b * seq.steps + t) * dir.ld_out, 0, hid * sizeof(float));
    }
  }
}

}  // namespace cmer_edge
