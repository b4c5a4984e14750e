// CMER_EDGE_CUDA_CHECK(expr): throw CudaError (a std::runtime_error) with file, line and the CUDA error string.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/device.h"

#define CMER_EDGE_CUDA_CHECK(expr)                                                        \
  do {                                                                                    \
    cudaError_t cmer_edge_err_ = (expr);                                                  \
    if (cmer_edge_err_ != cudaSuccess) {                                                  \
      throw ::cmer_edge::CudaError(std::string("CUDA error at " __FILE__ ":") +            \
                               std::to_string(__LINE__) + " (" #expr "): " +             \
                               cudaGetErrorString(cmer_edge_err_));                       \
    }                                                                                     \
  } while (0)
