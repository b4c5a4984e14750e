// One LSTM layer over host arrays, weights in PyTorch's layout: the input projection (PackedLinear)
// and the recurrence (LstmRecurrence) on the chosen device, staging through device memory on CUDA.
// Used by the op-level bindings and tests; the head keeps its weights resident instead.
#pragma once

#include <cstdint>

#include "core/device.h"

namespace cmer_edge {

struct LstmLayerWeights {
  const float* w_ih;  // [4H, D]
  const float* w_hh;  // [4H, H]
  const float* b_ih;  // [4H]
  const float* b_hh;  // [4H]
  int64_t input_dim;  // D
  int64_t hidden;     // H
};

// x [batch, steps, D] → out [batch, steps, H]; lengths [batch] in 1..steps.
void LstmLayerHost(Device device, const LstmLayerWeights& weights, const float* x, const int32_t* lengths,
                   int64_t batch, int64_t steps, bool reverse, float* out);

}  // namespace cmer_edge
