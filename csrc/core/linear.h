// Linear projection y[N, M] = x[N, K] · W[M, K]ᵀ + b[M].
// Row-major contiguous arrays; b may be null. On Device::kCuda all pointers are device pointers
// and `stream` is a cudaStream_t (null: the default stream).
#pragma once

#include <cstdint>

#include "core/device.h"

namespace cmer_edge {

struct LinearShape {
  int64_t rows;     // N
  int64_t in_dim;   // K
  int64_t out_dim;  // M
};

void Linear(Device device, const float* x, const float* w, const float* b, LinearShape shape, float* y,
            void* stream = nullptr);

void LinearCpu(const float* x, const float* w, const float* b, LinearShape shape, float* y);
#ifdef CMER_EDGE_WITH_CUDA
void LinearCuda(const float* x, const float* w, const float* b, LinearShape shape, float* y, void* stream);
#endif

}  // namespace cmer_edge
