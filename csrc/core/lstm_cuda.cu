// CUDA LSTM recurrence: the whole sequence in one kernel. One block per (sequence, direction), one
// thread per gate (4H threads). h lives in shared memory; each step every thread accumulates its
// gate over W_hhᵀ (reads coalesced across the block), then H threads apply the cell update. Both
// directions of a BiLSTM run in the same launch (blockIdx.y). No host sync: capturable in a graph.
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#include "core/lstm.h"

namespace cmer_edge {
namespace {

struct DirParams {
  const float* gates_x;
  int64_t ld_gates;
  const float* w_hh_t;
  float* out;
  int64_t ld_out;
  int reverse;
};

struct Params {
  DirParams dir[2];
  const int32_t* lengths;
  int64_t steps;
  int hidden;
};

__device__ __forceinline__ float SigmoidF(float v) { return 1.f / (1.f + __expf(-v)); }

// 1024 threads (H = 256) must fit the register file: cap the registers for that block size.
__global__ void __launch_bounds__(4 * kMaxCudaLstmHidden) LstmRecurrenceKernel(Params p) {
  extern __shared__ float smem[];
  const int hidden = p.hidden;
  float* h = smem;               // [H]
  float* gates = smem + hidden;  // [4H]
  const DirParams d = blockIdx.y == 0 ? p.dir[0] : p.dir[1];  // constant indices: p stays in the parameter space
  const int64_t b = blockIdx.x;
  const int j = threadIdx.x;
  const int g4 = 4 * hidden;
  const int len = p.lengths[b];
  float c = 0.f;
  if (j < hidden) h[j] = 0.f;
  __syncthreads();
  for (int s = 0; s < len; ++s) {
    const int64_t row = b * p.steps + (d.reverse ? len - 1 - s : s);
    float acc = d.gates_x[row * d.ld_gates + j];
    for (int k = 0; k < hidden; ++k) acc += h[k] * d.w_hh_t[k * g4 + j];
    gates[j] = acc;
    __syncthreads();
    if (j < hidden) {
      const float i_gate = SigmoidF(gates[j]);
      const float f_gate = SigmoidF(gates[hidden + j]);
      const float g_gate = tanhf(gates[2 * hidden + j]);
      const float o_gate = SigmoidF(gates[3 * hidden + j]);
      c = f_gate * c + i_gate * g_gate;
      const float hj = o_gate * tanhf(c);
      h[j] = hj;
      d.out[row * d.ld_out + j] = hj;
    }
    __syncthreads();
  }
  for (int64_t t = len; t < p.steps; ++t) {
    if (j < hidden) d.out[(b * p.steps + t) * d.ld_out + j] = 0.f;
  }
}

void LaunchLstmRecurrence(const Params& p, unsigned batch, unsigned dirs, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(5 * p.hidden) * sizeof(float);
  const LaunchShape shape{{batch, dirs, 1}, {static_cast<unsigned>(4 * p.hidden), 1, 1}, smem};
  if (!CheckLaunch("LstmRecurrenceKernel", reinterpret_cast<const void*>(&LstmRecurrenceKernel), shape)) return;
  LstmRecurrenceKernel<<<dim3(batch, dirs), 4 * p.hidden, smem, stream>>>(p);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void LstmRecurrenceCuda(const LstmSequences& seq, const LstmDirection* dirs, int num_dirs, void* stream) {
  Params p{};
  for (int d = 0; d < num_dirs; ++d) {
    p.dir[d] = DirParams{dirs[d].gates_x, dirs[d].ld_gates, dirs[d].weights->w_hh_t(), dirs[d].out,
                         dirs[d].ld_out, dirs[d].reverse ? 1 : 0};
  }
  p.lengths = seq.lengths_device;
  p.steps = seq.steps;
  p.hidden = static_cast<int>(dirs[0].weights->hidden());
  LaunchLstmRecurrence(p, static_cast<unsigned>(seq.batch), static_cast<unsigned>(num_dirs),
                       static_cast<cudaStream_t>(stream));
}

}  // namespace cmer_edge
