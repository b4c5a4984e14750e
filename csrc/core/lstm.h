// LSTM recurrence over padded sequences, PyTorch semantics (gate order i, f, g, o):
//   gates = gates_x[b, t] + W_hh h ;  c = σ(f) c + σ(i) tanh(g) ;  h = σ(o) tanh(c)
// The input projection gates_x = x W_ihᵀ + b_ih + b_hh is computed beforehand (PackedLinear), so a
// caller that sees each input once (the live session) projects it once and only reruns this.
//
// Sequence b, step t is row b·steps + t of gates_x (4H floats, row stride ld_gates) and of out
// (H floats, row stride ld_out: out may be one half of a BiLSTM's [.., 2H] rows). Rows t >= length
// are written as 0. reverse=true runs t = length-1 .. 0 (a BiLSTM's backward half). Zero initial state.
// CPU: each step is one fused-gate product [active rows, H] · W_hhᵀ over every sequence still running,
// then a vectorised cell update. CUDA: the whole sequence in one kernel (one block per sequence and
// direction, one thread per gate), both directions of a BiLSTM in one launch.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "core/context.h"
#include "core/packed_linear.h"

namespace cmer_edge {

// Largest H the CUDA kernel takes (one thread per gate, 4H <= 1024).
constexpr int64_t kMaxCudaLstmHidden = 256;

// One direction's recurrent weights W_hh [4H, H] (host pointer), prepared for a device.
class LstmWeights {
 public:
  LstmWeights() = default;
  LstmWeights(Device device, const float* w_hh, int64_t hidden);
  Device device() const { return device_; }
  int64_t hidden() const { return hidden_; }
  int64_t weight_bytes() const { return 4 * hidden_ * hidden_ * static_cast<int64_t>(sizeof(float)); }
  const PackedLinear& packed() const { return packed_; }  // CPU
  const float* w_hh_t() const { return w_hh_t_.data(); }  // CUDA: W_hhᵀ [H, 4H]

 private:
  Device device_ = Device::kCpu;
  int64_t hidden_ = 0;
  PackedLinear packed_;
  Buffer<float> w_hh_t_;
};

struct LstmSequences {
  int64_t batch = 0;
  int64_t steps = 0;
  const int32_t* lengths = nullptr;         // host [batch], each in 1..steps
  const int32_t* lengths_device = nullptr;  // CUDA: the same lengths in device memory
};

struct LstmDirection {
  const LstmWeights* weights;
  const float* gates_x;
  int64_t ld_gates;
  float* out;
  int64_t ld_out;
  bool reverse;
};

// Runs one or two directions (a BiLSTM: one CUDA launch) over the same sequences.
void LstmRecurrence(const LstmSequences& seq, const LstmDirection* dirs, int num_dirs, const ExecContext& ctx);

void LstmRecurrenceCpu(const LstmSequences& seq, const LstmDirection& dir, ThreadPool* pool);
#ifdef CMER_EDGE_WITH_CUDA
void LstmRecurrenceCuda(const LstmSequences& seq, const LstmDirection* dirs, int num_dirs, void* stream);
#endif

}  // namespace cmer_edge
