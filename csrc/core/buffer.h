// Buffer<T>: an owning array on one device — 64-byte aligned host memory on Device::kCpu,
// device memory on Device::kCuda. Move-only. The head keeps its weights and workspaces in these.
// On CUDA the constructors finish their zeroing / upload before returning (the head's kernels run
// on non-blocking streams, which do not wait for the legacy default stream); copies given a
// stream are ordered on that stream instead.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/device.h"

namespace cmer_edge {

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t count) : device_(device), count_(count) {
    if (count == 0) return;
    if (device == Device::kCpu) {
      const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
      ptr_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (ptr_ == nullptr) throw std::bad_alloc();
      std::memset(static_cast<void*>(ptr_), 0, bytes);
    } else {
      ptr_ = static_cast<T*>(DeviceAlloc(count * sizeof(T)));
      DeviceMemsetZero(ptr_, count * sizeof(T));
      StreamSynchronize(nullptr);
    }
  }
  Buffer(Device device, const T* host, size_t count) : Buffer(device, count) { CopyFromHost(host, count); }
  ~Buffer() { Release(); }
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Release();
      device_ = other.device_;
      count_ = std::exchange(other.count_, 0);
      ptr_ = std::exchange(other.ptr_, nullptr);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }
  Device device() const { return device_; }
  bool empty() const { return count_ == 0; }

  // Host → this buffer at element `offset`. CUDA: ordered on `stream`; without a stream the copy
  // is complete on return.
  void CopyFromHost(const T* host, size_t count, size_t offset = 0, void* stream = nullptr) {
    if (count == 0) return;
    if (device_ == Device::kCpu) {
      std::memcpy(static_cast<void*>(ptr_ + offset), host, count * sizeof(T));
    } else {
      CopyHostToDevice(ptr_ + offset, host, count * sizeof(T), stream);
      if (stream == nullptr) StreamSynchronize(nullptr);
    }
  }
  // This buffer → host; returns once the host copy is complete.
  void CopyToHost(T* host, size_t count, size_t offset = 0, void* stream = nullptr) const {
    if (count == 0) return;
    if (device_ == Device::kCpu) {
      std::memcpy(static_cast<void*>(host), ptr_ + offset, count * sizeof(T));
    } else {
      CopyDeviceToHost(host, ptr_ + offset, count * sizeof(T), stream);
    }
  }

 private:
  void Release() noexcept {
    if (ptr_ == nullptr) return;
    if (device_ == Device::kCpu) {
      std::free(ptr_);
    } else {
      DeviceFree(ptr_);
    }
    ptr_ = nullptr;
  }

  Device device_ = Device::kCpu;
  size_t count_ = 0;
  T* ptr_ = nullptr;
};

// Copy `bytes` between two pointers on `device` (memcpy on CPU, an async copy on CUDA).
inline void CopyOnDevice(Device device, void* dst, const void* src, size_t bytes, void* stream) {
  if (device == Device::kCpu) {
    std::memmove(dst, src, bytes);
  } else {
    CopyDeviceToDevice(dst, src, bytes, stream);
  }
}

}  // namespace cmer_edge
