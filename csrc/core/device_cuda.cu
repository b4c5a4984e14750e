#include "core/cuda_check.h"
#include "core/device.h"

namespace cmer_edge {
namespace {

cudaStream_t AsStream(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace

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

void CopyHostToDevice(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, AsStream(stream)));
}

void CopyDeviceToHost(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  CMER_EDGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, AsStream(stream)));
  CMER_EDGE_CUDA_CHECK(cudaStreamSynchronize(AsStream(stream)));  // the host reads it next
}

void CopyDeviceToHostAsync(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, AsStream(stream)));
}

void CopyDeviceToDevice(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes > 0) {
    CMER_EDGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, AsStream(stream)));
  }
}

void DeviceMemsetZero(void* dst, size_t bytes, void* stream) {
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, AsStream(stream)));
}

void CopyDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, size_t rows,
                  void* stream) {
  if (row_bytes == 0 || rows == 0) return;
  CMER_EDGE_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyDeviceToDevice,
                                         AsStream(stream)));
}

void DeviceSynchronize() { CMER_EDGE_CUDA_CHECK(cudaDeviceSynchronize()); }

void* CreateStream() {
  RequireCuda("CreateStream");
  cudaStream_t stream = nullptr;
  CMER_EDGE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

void DestroyStream(void* stream) noexcept {
  if (stream != nullptr) cudaStreamDestroy(AsStream(stream));
}

void StreamSynchronize(void* stream) { CMER_EDGE_CUDA_CHECK(cudaStreamSynchronize(AsStream(stream))); }

void* HostAllocPinned(size_t bytes) {
  RequireCuda("HostAllocPinned");
  void* ptr = nullptr;
  if (bytes > 0) CMER_EDGE_CUDA_CHECK(cudaHostAlloc(&ptr, bytes, cudaHostAllocDefault));
  return ptr;
}

void HostFreePinned(void* ptr) noexcept {
  if (ptr != nullptr) cudaFreeHost(ptr);
}

void BeginStreamCapture(void* stream) {
  CMER_EDGE_CUDA_CHECK(cudaStreamBeginCapture(AsStream(stream), cudaStreamCaptureModeThreadLocal));
}

void* EndStreamCapture(void* stream) {
  cudaGraph_t graph = nullptr;
  CMER_EDGE_CUDA_CHECK(cudaStreamEndCapture(AsStream(stream), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  CMER_EDGE_CUDA_CHECK(err);
  return exec;
}

void LaunchGraph(void* graph_exec, void* stream) {
  CMER_EDGE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), AsStream(stream)));
}

void DestroyGraph(void* graph_exec) noexcept {
  if (graph_exec != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec));
}

}  // namespace cmer_edge
