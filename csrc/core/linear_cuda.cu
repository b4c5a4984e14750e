// CUDA Linear: one warp per output feature, looping over rows; the weight row is read
// coalesced and reduced with warp shuffles. Suited to the small-N (batch-1) case of the head.
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#include "core/linear.h"

namespace cmer_edge {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

__global__ void LinearKernel(const float* __restrict__ x, const float* __restrict__ w,
                             const float* __restrict__ b, int64_t rows, int64_t k, int64_t m,
                             float* __restrict__ y) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (j >= m) return;
  const float* wj = w + j * k;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * k;
    float acc = 0.f;
    for (int64_t i = lane; i < k; i += kWarp) acc += wj[i] * xr[i];
    for (int offset = kWarp / 2; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) y[r * m + j] = acc + (b != nullptr ? b[j] : 0.f);
  }
}

void LaunchLinear(const float* x, const float* w, const float* b, LinearShape s, float* y,
                  cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((s.out_dim + kWarpsPerBlock - 1) / kWarpsPerBlock);
  LinearKernel<<<blocks, kWarpsPerBlock * kWarp, 0, stream>>>(x, w, b, s.rows, s.in_dim, s.out_dim, y);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void LinearCuda(const float* x, const float* w, const float* b, LinearShape shape, float* y, void* stream) {
  if (shape.rows == 0) return;
  LaunchLinear(x, w, b, shape, y, static_cast<cudaStream_t>(stream));
}

}  // namespace cmer_edge
