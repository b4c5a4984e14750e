#include "core/lstm.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/lengths.h"

namespace cmer_edge {

LstmWeights::LstmWeights(Device device, const float* w_hh, int64_t hidden) : device_(device), hidden_(hidden) {
  if (hidden < 1) throw std::invalid_argument("LstmWeights: hidden must be >= 1, got " + std::to_string(hidden));
  if (device == Device::kCpu) {
    packed_ = PackedLinear(device, WeightFormat::kF32, w_hh, nullptr, 4 * hidden, hidden);
    return;
  }
  if (hidden > kMaxCudaLstmHidden) {
    throw std::invalid_argument("LSTM: the CUDA kernel takes hidden <= " + std::to_string(kMaxCudaLstmHidden) +
                                ", got " + std::to_string(hidden));
  }
  const int64_t g4 = 4 * hidden;
  std::vector<float> t(static_cast<size_t>(g4 * hidden));
  for (int64_t j = 0; j < g4; ++j) {
    for (int64_t k = 0; k < hidden; ++k) t[k * g4 + j] = w_hh[j * hidden + k];
  }
  w_hh_t_ = Buffer<float>(device, t.data(), t.size());
}

void LstmRecurrence(const LstmSequences& seq, const LstmDirection* dirs, int num_dirs, const ExecContext& ctx) {
  if (seq.batch < 0 || seq.steps < 1 || num_dirs < 1 || num_dirs > 2) {
    throw std::invalid_argument("LstmRecurrence: bad shape batch=" + std::to_string(seq.batch) +
                                " steps=" + std::to_string(seq.steps) + " directions=" + std::to_string(num_dirs));
  }
  CheckLengths(seq.lengths, seq.batch, seq.steps, "LstmRecurrence");
  for (int d = 0; d < num_dirs; ++d) {
    if (dirs[d].weights->device() != ctx.device) {
      throw std::invalid_argument(std::string("LstmRecurrence: weights live on ") +
                                  DeviceName(dirs[d].weights->device()) + ", asked to run on " +
                                  DeviceName(ctx.device));
    }
  }
  if (seq.batch == 0) return;
  DispatchOp(
      "LstmRecurrence", ctx.device,
      [&] {
        for (int d = 0; d < num_dirs; ++d) LstmRecurrenceCpu(seq, dirs[d], ctx.pool);
      },
      CMER_EDGE_CUDA_ONLY([&] {
        if (seq.lengths_device == nullptr) throw std::invalid_argument("LstmRecurrence: CUDA needs lengths_device");
        LstmRecurrenceCuda(seq, dirs, num_dirs, ctx.stream);
      }));
}

}  // namespace cmer_edge
