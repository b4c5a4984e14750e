#include "core/cuda_check.h"
#include "core/device.h"

namespace cmer_edge {

bool CudaCompiled() { return true; }

bool CudaAvailable() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

void* DeviceAlloc(size_t bytes) {
  RequireCuda("DeviceAlloc");
  void* ptr = nullptr;
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}

void DeviceFree(void* ptr) noexcept {
  if (ptr != nullptr) cudaFree(ptr);
}

void CopyHostToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void CopyDeviceToHost(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void DeviceSynchronize() { CMER_EDGE_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace cmer_edge
