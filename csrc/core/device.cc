#include "core/device.h"

#include <stdexcept>

namespace cmer_edge {

Device ParseDevice(const std::string& name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  throw std::invalid_argument("device must be 'cpu' or 'cuda', got '" + name + "'");
}

const char* DeviceName(Device device) { return device == Device::kCpu ? "cpu" : "cuda"; }

void RequireCuda(const char* what) {
  if (!CudaCompiled()) {
    throw std::runtime_error(std::string(what) +
                             ": this build of cmer_edge has no CUDA kernels; rebuild with "
                             "CMER_EDGE_CUDA=ON pip install . (nvcc must be on PATH)");
  }
  if (!CudaAvailable()) {
    throw std::runtime_error(std::string(what) + ": CUDA kernels are built in, but no CUDA device is usable");
  }
}

#ifndef CMER_EDGE_WITH_CUDA
bool CudaCompiled() { return false; }
bool CudaAvailable() { return false; }
void* DeviceAlloc(size_t) { RequireCuda("DeviceAlloc"); return nullptr; }
void DeviceFree(void*) noexcept {}
void CopyHostToDevice(void*, const void*, size_t, void*) { RequireCuda("CopyHostToDevice"); }
void CopyDeviceToHost(void*, const void*, size_t, void*) { RequireCuda("CopyDeviceToHost"); }
void CopyDeviceToDevice(void*, const void*, size_t, void*) { RequireCuda("CopyDeviceToDevice"); }
void DeviceMemsetZero(void*, size_t, void*) { RequireCuda("DeviceMemsetZero"); }
void CopyDevice2D(void*, size_t, const void*, size_t, size_t, size_t, void*) { RequireCuda("CopyDevice2D"); }
void DeviceSynchronize() { RequireCuda("DeviceSynchronize"); }
void* CreateStream() { RequireCuda("CreateStream"); return nullptr; }
void DestroyStream(void*) noexcept {}
void StreamSynchronize(void*) { RequireCuda("StreamSynchronize"); }
void CopyDeviceToHostAsync(void*, const void*, size_t, void*) { RequireCuda("CopyDeviceToHostAsync"); }
void* HostAllocPinned(size_t) { RequireCuda("HostAllocPinned"); return nullptr; }
void HostFreePinned(void*) noexcept {}
void BeginStreamCapture(void*) { RequireCuda("BeginStreamCapture"); }
void* EndStreamCapture(void*) { RequireCuda("EndStreamCapture"); return nullptr; }
void LaunchGraph(void*, void*) { RequireCuda("LaunchGraph"); }
void DestroyGraph(void*) noexcept {}
bool CheckLaunch(const char*, const void*, const LaunchShape&) { RequireCuda("CheckLaunch"); return false; }
#endif

}  // namespace cmer_edge
