// CUDA LSTM recurrence: the whole sequence in one kernel. One block per sequence, one thread per
// gate (4H threads). h lives in shared memory; each step every thread accumulates its gate over
// W_hhᵀ (reads coalesced across the block), then H threads apply the cell update.
#include <cuda_runtime.h>

#include <vector>

#include "core/cuda_check.h"
#include "core/lstm.h"

namespace cmer_edge {
namespace {

__device__ __forceinline__ float SigmoidF(float v) { return 1.f / (1.f + __expf(-v)); }

__global__ void LstmRecurrenceKernel(const float* __restrict__ gates_x, const float* __restrict__ w_hh_t,
                                     const int32_t* __restrict__ lengths, int64_t steps, int hidden,
                                     bool reverse, float* __restrict__ out) {
  extern __shared__ float smem[];
  float* h = smem;              // [H]
  float* gates = smem + hidden;  // [4H]
  const int b = blockIdx.x;
  const int j = threadIdx.x;
  const int g4 = 4 * hidden;
  const int len = lengths[b];
  const float* gx = gates_x + static_cast<int64_t>(b) * steps * g4;
  float* ob = out + static_cast<int64_t>(b) * steps * hidden;
  float c = 0.f;
  if (j < hidden) h[j] = 0.f;
  __syncthreads();
  for (int s = 0; s < len; ++s) {
    const int t = reverse ? len - 1 - s : s;
    float acc = gx[static_cast<int64_t>(t) * g4 + j];
    for (int k = 0; k < hidden; ++k) acc += h[k] * w_hh_t[k * g4 + j];
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
      ob[static_cast<int64_t>(t) * hidden + j] = hj;
    }
    __syncthreads();
  }
  for (int64_t t = len; t < steps; ++t) {
    if (j < hidden) ob[t * hidden + j] = 0.f;
  }
}

}  // namespace

void LstmRecurrenceCuda(const float* gates_x, const float* w_hh_t, const int32_t* lengths, LstmShape shape,
                        bool reverse, float* out, void* stream) {
  if (shape.batch == 0) return;
  const int hidden = static_cast<int>(shape.hidden);
  DeviceArray<int32_t> d_lengths(lengths, static_cast<size_t>(shape.batch));
  const size_t smem = static_cast<size_t>(5 * hidden) * sizeof(float);
  auto s = static_cast<cudaStream_t>(stream);
  LstmRecurrenceKernel<<<static_cast<unsigned>(shape.batch), 4 * hidden, smem, s>>>(
      gates_x, w_hh_t, d_lengths.data(), shape.steps, hidden, reverse, out);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
  CMER_EDGE_CUDA_CHECK(cudaStreamSynchronize(s));  // d_lengths is freed on return
}

}  // namespace cmer_edge
