#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/cuda_check.h"
#include "core/device.h"

namespace cmer_edge {
namespace {

cudaStream_t AsStream(void* stream) { return static_cast<cudaStream_t>(stream); }

struct DeviceLimits {
  int max_threads = 0;
  int max_block[3] = {0, 0, 0};
  int max_grid[3] = {0, 0, 0};
  int max_shared = 0;  // per block, without opt-in
};

// Device limits and per-kernel attributes, queried once per (device, kernel) and cached: the checks
// then cost a map lookup per launch (no CUDA call, nothing that would break graph capture).
const DeviceLimits& Limits(int device) {
  static std::mutex mu;
  static std::map<int, DeviceLimits> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(device);
  if (it != cache.end()) return it->second;
  DeviceLimits l;
  const std::pair<cudaDeviceAttr, int*> attrs[] = {
      {cudaDevAttrMaxThreadsPerBlock, &l.max_threads},  {cudaDevAttrMaxBlockDimX, &l.max_block[0]},
      {cudaDevAttrMaxBlockDimY, &l.max_block[1]},       {cudaDevAttrMaxBlockDimZ, &l.max_block[2]},
      {cudaDevAttrMaxGridDimX, &l.max_grid[0]},         {cudaDevAttrMaxGridDimY, &l.max_grid[1]},
      {cudaDevAttrMaxGridDimZ, &l.max_grid[2]},         {cudaDevAttrMaxSharedMemoryPerBlock, &l.max_shared}};
  for (const auto& [attr, out] : attrs) CMER_EDGE_CUDA_CHECK(cudaDeviceGetAttribute(out, attr, device));
  return cache.emplace(device, l).first->second;
}

int KernelMaxThreads(int device, const void* kernel) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(device, kernel);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  cudaFuncAttributes attr{};
  CMER_EDGE_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  return cache.emplace(key, attr.maxThreadsPerBlock).first->second;
}

std::string Dims(const unsigned d[3]) {
  return "(" + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " + std::to_string(d[2]) + ")";
}

}  // namespace

bool CheckLaunch(const char* name, const void* kernel, const LaunchShape& s) {
  if (s.grid[0] == 0 || s.grid[1] == 0 || s.grid[2] == 0) return false;
  int device = 0;
  CMER_EDGE_CUDA_CHECK(cudaGetDevice(&device));
  const DeviceLimits& l = Limits(device);
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string("CUDA launch of ") + name + " refused before launching: " + what +
                                " (grid " + Dims(s.grid) + ", block " + Dims(s.block) + ", " +
                                std::to_string(s.shared_bytes) + " B dynamic shared memory, device " +
                                std::to_string(device) + ")");
  };
  const size_t threads = static_cast<size_t>(s.block[0]) * s.block[1] * s.block[2];
  if (threads == 0) fail("empty block");
  for (int i = 0; i < 3; ++i) {
    if (s.block[i] > static_cast<unsigned>(l.max_block[i])) {
      fail("block dim " + std::to_string(i) + " exceeds the device's " + std::to_string(l.max_block[i]));
    }
    if (s.grid[i] > static_cast<unsigned>(l.max_grid[i])) {
      fail("grid dim " + std::to_string(i) + " exceeds the device's " + std::to_string(l.max_grid[i]));
    }
  }
  const int kernel_max = KernelMaxThreads(device, kernel);
  if (threads > static_cast<size_t>(std::min(l.max_threads, kernel_max))) {
    fail(std::to_string(threads) + " threads per block exceed " + std::to_string(std::min(l.max_threads, kernel_max)) +
         " (device " + std::to_string(l.max_threads) + ", this kernel's registers allow " +
         std::to_string(kernel_max) + ")");
  }
  if (s.shared_bytes > static_cast<size_t>(l.max_shared)) {
    fail("dynamic shared memory exceeds the device's " + std::to_string(l.max_shared) + " B per block");
  }
  return true;
}

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
