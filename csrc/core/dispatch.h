// One op's device dispatch: DispatchOp runs the op's CPU or CUDA implementation by device.
//
//   DispatchOp("Attention", ctx.device, [&] { AttentionCpu(s, io); },
//              CMER_EDGE_CUDA_ONLY([&] { AttentionCuda(s, io, ctx.stream); }));
//
// CMER_EDGE_CUDA_ONLY keeps its argument in a CUDA build and drops it otherwise (the *Cuda functions
// are declared only there); a build without CUDA asked to run on CUDA then throws RequireCuda's
// std::runtime_error, which names the op and says how to rebuild. Checks that only the CUDA path needs
// (device copies of the lengths, ...) go inside the CUDA callable.
#pragma once

#include <type_traits>
#include <utility>

#include "core/device.h"

namespace cmer_edge {

// What CMER_EDGE_CUDA_ONLY(...) stands for in a build without CUDA.
struct NoCudaImpl {};

#ifdef CMER_EDGE_WITH_CUDA
#define CMER_EDGE_CUDA_ONLY(...) __VA_ARGS__
#else
#define CMER_EDGE_CUDA_ONLY(...) ::cmer_edge::NoCudaImpl{}
#endif

template <typename CpuFn, typename CudaFn>
void DispatchOp(const char* op, Device device, CpuFn&& cpu, CudaFn&& cuda) {
  if (device == Device::kCpu) {
    std::forward<CpuFn>(cpu)();
    return;
  }
  if constexpr (std::is_same_v<std::decay_t<CudaFn>, NoCudaImpl>) {
    RequireCuda(op);
  } else {
    std::forward<CudaFn>(cuda)();
  }
}

}  // namespace cmer_edge
