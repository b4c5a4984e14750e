// CUDA LayerNorm(x + r): one block per row; the residual sum stays in registers (each thread owns
// width / blockDim columns), two block reductions give mean and variance.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/block_reduce_cuda.cuh"
#include "core/cuda_check.h"
#include "core/layer_norm.h"

namespace cmer_edge {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxPerThread = 8;  // width <= 2048

__global__ void AddLayerNormKernel(LayerNormIo io, const float* __restrict__ gamma, const float* __restrict__ beta,
                                   int64_t width, float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = io.x + row * io.ldx;
  const float* rr = io.r != nullptr ? io.r + row * io.ldr : nullptr;
  float v[kMaxPerThread];
  float local = 0.f;
  for (int u = 0; u < kMaxPerThread; ++u) {
    const int64_t c = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
    v[u] = c < width ? xr[c] + (rr != nullptr ? rr[c] : 0.f) : 0.f;
    local += v[u];
  }
  const float mean = BlockReduce<false>(local, scratch) / static_cast<float>(width);
  local = 0.f;
  for (int u = 0; u < kMaxPerThread; ++u) {
    const int64_t c = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
    const float dc = c < width ? v[u] - mean : 0.f;
    local += dc * dc;
  }
  const float var = BlockReduce<false>(local, scratch) / static_cast<float>(width);
  const float rstd = rsqrtf(var + eps);
  float* yr = io.y + row * io.ldy;
  for (int u = 0; u < kMaxPerThread; ++u) {
    const int64_t c = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
    if (c < width) yr[c] = (v[u] - mean) * rstd * gamma[c] + beta[c];
  }
}

void LaunchAddLayerNorm(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                        float eps, cudaStream_t stream) {
  const LaunchShape shape{{static_cast<unsigned>(rows), 1, 1}, {kThreads, 1, 1}, 0};
  if (!CheckLaunch("AddLayerNormKernel", reinterpret_cast<const void*>(&AddLayerNormKernel), shape)) return;
  AddLayerNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(io, gamma, beta, width, eps);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void AddLayerNormCuda(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                      float eps, void* stream) {
  if (width > static_cast<int64_t>(kThreads) * kMaxPerThread) {
    throw std::invalid_argument("AddLayerNorm: the CUDA kernel takes width <= " +
                                std::to_string(kThreads * kMaxPerThread) + ", got " + std::to_string(width));
  }
  LaunchAddLayerNorm(io, gamma, beta, rows, width, eps, static_cast<cudaStream_t>(stream));
}

}  // namespace cmer_edge
