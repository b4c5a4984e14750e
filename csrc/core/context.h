// ExecContext: where and how an op runs — the device, the CPU thread pool (null: one thread) and
// the CUDA stream (null: the default stream). Ops take it by const reference.
#pragma once

#include "core/device.h"

namespace cmer_edge {

class ThreadPool;

struct ExecContext {
  Device device = Device::kCpu;
  ThreadPool* pool = nullptr;
  void* stream = nullptr;
};

}  // namespace cmer_edge
