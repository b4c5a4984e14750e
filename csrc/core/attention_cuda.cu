// CUDA attention: one block per (query row, head, sequence). Threads score the visible keys into
// shared memory, a block max/sum gives the softmax, then threads own output dims of the context.
#include <cuda_runtime.h>

#include <cmath>

#include "core/attention.h"
#include "core/block_reduce_cuda.cuh"
#include "core/cuda_check.h"

namespace cmer_edge {
namespace {

constexpr int kThreads = 128;

__global__ void AttentionKernel(AttentionShape s, AttentionIo io, float sqrt_d) {
  extern __shared__ float scores[];  // [kv_steps]
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t d = s.width / s.heads;
  const int64_t len = io.lengths_device[b];
  const int64_t pos = s.q_offset + i;
  const int64_t lo = s.window_left < 0 ? 0 : max(pos - s.window_left, int64_t{0});
  const int64_t hi = s.window_right < 0 ? len : min(pos + s.window_right + 1, len);
  const float* qh = io.q + (b * s.q_steps + i) * io.ld_q + h * d;
  float* out = io.ctx + (b * s.q_steps + i) * io.ld_ctx + h * d;
  if (lo >= hi) {
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[c] = 0.f;
    return;
  }
  float local_max = -INFINITY;
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    const float* kj = io.k + (b * s.kv_steps + j) * io.ld_k + h * d;
    float acc = 0.f;
    for (int64_t c = 0; c < d; ++c) acc += qh[c] * kj[c];
    acc /= sqrt_d;
    scores[j] = acc;
    local_max = fmaxf(local_max, acc);
  }
  const float mx = BlockReduce<true>(local_max, scratch);
  float local_sum = 0.f;
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    const float e = __expf(scores[j] - mx);
    scores[j] = e;
    local_sum += e;
  }
  const float sum = BlockReduce<false>(local_sum, scratch);
  __syncthreads();
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.f;
    for (int64_t j = lo; j < hi; ++j) acc += scores[j] * io.v[(b * s.kv_steps + j) * io.ld_v + h * d + c];
    out[c] = acc / sum;
  }
}

void LaunchAttention(const AttentionShape& s, const AttentionIo& io, cudaStream_t stream) {
  const float sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(s.width / s.heads)));
  const dim3 grid(static_cast<unsigned>(s.q_steps), static_cast<unsigned>(s.heads), static_cast<unsigned>(s.batch));
  const size_t smem = static_cast<size_t>(s.kv_steps) * sizeof(float);
  const LaunchShape shape{{grid.x, grid.y, grid.z}, {kThreads, 1, 1}, smem};
  if (!CheckLaunch("AttentionKernel", reinterpret_cast<const void*>(&AttentionKernel), shape)) return;
  AttentionKernel<<<grid, kThreads, smem, stream>>>(s, io, sqrt_d);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void AttentionCuda(const AttentionShape& s, const AttentionIo& io, void* stream) {
  LaunchAttention(s, io, static_cast<cudaStream_t>(stream));
}

}  // namespace cmer_edge
