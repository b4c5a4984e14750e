#include "core/linear.h"

#include <stdexcept>

namespace cmer_edge {

void Linear(Device device, const float* x, const float* w, const float* b, LinearShape shape, float* y,
            void* stream) {
  if (shape.rows < 0 || shape.in_dim <= 0 || shape.out_dim <= 0) {
    throw std::invalid_argument("Linear: bad shape rows=" + std::to_string(shape.rows) +
                                " in_dim=" + std::to_string(shape.in_dim) +
                                " out_dim=" + std::to_string(shape.out_dim));
  }
  if (device == Device::kCpu) {
    LinearCpu(x, w, b, shape, y);
    return;
  }
#ifdef CMER_EDGE_WITH_CUDA
  LinearCuda(x, w, b, shape, y, stream);
#else
  (void)stream;
  RequireCuda("Linear");
#endif
}

}  // namespace cmer_edge
