// LSTM recurrence over padded sequences, PyTorch semantics (gate order i, f, g, o):
//   g = gates_x[b, t] + W_hh h ;  c = σ(f) c + σ(i) tanh(g) ;  h = σ(o) tanh(c)
// The input projection gates_x = x W_ihᵀ + b_ih + b_hh is computed beforehand (Linear), so a caller
// that sees each input once (the live session) projects it once and only reruns this recurrence.
//
// Layouts (row-major, contiguous):
//   gates_x  [batch, steps, 4H]
//   w_hh_t   [H, 4H]            W_hh transposed, so each step is an axpy over 4H outputs
//   lengths  [batch]            valid steps per sequence, 1..steps (host memory on every device)
//   out      [batch, steps, H]  hidden states; positions t >= lengths[b] are written as 0
// reverse=true runs each sequence from t = lengths[b]-1 down to 0 (the backward half of a BiLSTM).
// Initial state is zero. On Device::kCuda gates_x, w_hh_t and out are device pointers.
#pragma once

#include <cstdint>

#include "core/device.h"

namespace cmer_edge {

struct LstmShape {
  int64_t batch;
  int64_t steps;
  int64_t hidden;  // H
};

// Largest H the CUDA kernel takes (one thread per gate, 4H <= 1024).
constexpr int64_t kMaxCudaLstmHidden = 256;

void LstmRecurrence(Device device, const float* gates_x, const float* w_hh_t, const int32_t* lengths,
                    LstmShape shape, bool reverse, float* out, void* stream = nullptr);

void LstmRecurrenceCpu(const float* gates_x, const float* w_hh_t, const int32_t* lengths, LstmShape shape,
                       bool reverse, float* out);
#ifdef CMER_EDGE_WITH_CUDA
void LstmRecurrenceCuda(const float* gates_x, const float* w_hh_t, const int32_t* lengths, LstmShape shape,
                        bool reverse, float* out, void* stream);
#endif

}  // namespace cmer_edge
