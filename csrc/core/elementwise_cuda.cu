#include <cuda_runtime.h>

#include "core/cuda_check.h"
#include "core/elementwise.h"

namespace cmer_edge {
namespace {

constexpr int kThreads = 256;

__global__ void NormaliseRowsKernel(NormaliseIo io, int64_t dim) {
  const int64_t r = blockIdx.y;
  const float m = io.mask != nullptr ? io.mask[r * io.ld_mask] : 1.f;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < dim;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    io.y[r * io.ldy + k] = (io.x[r * io.ldx + k] - io.mean[k]) * io.inv_std[k] * m;
  }
}

void LaunchNormaliseRows(const NormaliseIo& io, int64_t rows, int64_t dim, cudaStream_t stream) {
  const unsigned blocks_x = static_cast<unsigned>((dim + kThreads - 1) / kThreads);
  const LaunchShape shape{{blocks_x, static_cast<unsigned>(rows), 1}, {kThreads, 1, 1}, 0};
  if (!CheckLaunch("NormaliseRowsKernel", reinterpret_cast<const void*>(&NormaliseRowsKernel), shape)) return;
  NormaliseRowsKernel<<<dim3(blocks_x, static_cast<unsigned>(rows)), kThreads, 0, stream>>>(io, dim);
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void NormaliseRowsCuda(const NormaliseIo& io, int64_t rows, int64_t dim, void* stream) {
  LaunchNormaliseRows(io, rows, dim, static_cast<cudaStream_t>(stream));
}

}  // namespace cmer_edge
