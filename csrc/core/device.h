// Where an op runs, and the few device-memory primitives the core needs.
// Everything here works in a CPU-only build; CUDA functions throw std::runtime_error there,
// with a message that says how to rebuild.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace cmer_edge {

enum class Device { kCpu, kCuda };

// An error reported by the CUDA runtime (CMER_EDGE_CUDA_CHECK). A head that sees one during a
// push or forward disables itself (its device state can no longer be trusted); the Python binding
// raises it as cmer_edge._native.CudaError (a RuntimeError).
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "cpu" or "cuda"; anything else throws std::invalid_argument naming the value.
Device ParseDevice(const std::string& name);
const char* DeviceName(Device device);

// True when this build contains the CUDA kernels.
bool CudaCompiled();
// True when CUDA is compiled in and at least one CUDA device can be used right now.
bool CudaAvailable();
// Throws std::runtime_error unless CudaAvailable(); `what` names the caller.
void RequireCuda(const char* what);

// Device memory (CUDA builds only). Sizes in bytes. `stream` is a cudaStream_t (null: default).
void* DeviceAlloc(size_t bytes);
void DeviceFree(void* ptr) noexcept;
void CopyHostToDevice(void* dst, const void* src, size_t bytes, void* stream = nullptr);
// Returns once the host copy is complete (synchronises the stream).
void CopyDeviceToHost(void* dst, const void* src, size_t bytes, void* stream = nullptr);
// Ordered on the stream only (capturable in a CUDA graph when dst is pinned).
void CopyDeviceToHostAsync(void* dst, const void* src, size_t bytes, void* stream);
void CopyDeviceToDevice(void* dst, const void* src, size_t bytes, void* stream = nullptr);
void DeviceMemsetZero(void* dst, size_t bytes, void* stream = nullptr);
// `rows` rows of `row_bytes` each, from src (pitch src_pitch bytes) to dst (pitch dst_pitch), on device.
void CopyDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, size_t rows,
                  void* stream = nullptr);
void DeviceSynchronize();
void* CreateStream();
void DestroyStream(void* stream) noexcept;
void StreamSynchronize(void* stream);

// Page-locked host memory (CUDA builds only): what graph-captured host<->device copies need.
void* HostAllocPinned(size_t bytes);
void HostFreePinned(void* ptr) noexcept;

// CUDA graphs: record the work issued on `stream` between Begin and End (nothing runs while
// capturing), then replay it. EndStreamCapture returns an instantiated executable graph.
void BeginStreamCapture(void* stream);
void* EndStreamCapture(void* stream);
void LaunchGraph(void* graph_exec, void* stream);
void DestroyGraph(void* graph_exec) noexcept;

// Launch configuration of one kernel, checked against the current device's limits and the
// kernel's own (registers cap its threads per block) before it is launched. Returns false when
// the grid is empty (nothing to launch); throws std::invalid_argument naming the kernel, the
// configuration and the limit otherwise. `kernel` is the __global__ function's address.
struct LaunchShape {
  unsigned grid[3];
  unsigned block[3];
  size_t shared_bytes;
};
bool CheckLaunch(const char* name, const void* kernel, const LaunchShape& shape);

}  // namespace cmer_edge
