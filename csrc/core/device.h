// Where an op runs, and the few device-memory primitives the core needs.
// Everything here works in a CPU-only build; CUDA functions throw std::runtime_error there,
// with a message that says how to rebuild.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cmer_edge {

enum class Device { kCpu, kCuda };

// "cpu" or "cuda"; anything else throws std::invalid_argument naming the value.
Device ParseDevice(const std::string& name);
const char* DeviceName(Device device);

// True when this build contains the CUDA kernels.
bool CudaCompiled();
// True when CUDA is compiled in and at least one CUDA device can be used right now.
bool CudaAvailable();
// Throws std::runtime_error unless CudaAvailable(); `what` names the caller.
void RequireCuda(const char* what);

// Device memory (CUDA builds only). Sizes in bytes.
void* DeviceAlloc(size_t bytes);
void DeviceFree(void* ptr) noexcept;
void CopyHostToDevice(void* dst, const void* src, size_t bytes);
void CopyDeviceToHost(void* dst, const void* src, size_t bytes);
void DeviceSynchronize();

// Owning device buffer of `count` elements of T.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count), ptr_(static_cast<T*>(DeviceAlloc(count * sizeof(T)))) {}
  DeviceArray(const T* host, size_t count) : DeviceArray(count) { Upload(host); }
  ~DeviceArray() { DeviceFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void Upload(const T* host) { CopyHostToDevice(ptr_, host, count_ * sizeof(T)); }
  void Download(T* host) const { CopyDeviceToHost(host, ptr_, count_ * sizeof(T)); }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  size_t count_;
  T* ptr_;
};

}  // namespace cmer_edge
