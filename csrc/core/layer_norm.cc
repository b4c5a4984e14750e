#include "core/layer_norm.h"

#include <stdexcept>
#include <string>

namespace cmer_edge {

void AddLayerNorm(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                  float eps, const ExecContext& ctx) {
  if (rows < 0 || width < 1) {
    throw std::invalid_argument("AddLayerNorm: bad shape rows=" + std::to_string(rows) +
                                " width=" + std::to_string(width));
  }
  if (rows == 0) return;
  if (ctx.device == Device::kCpu) {
    AddLayerNormCpu(io, gamma, beta, rows, width, eps);
    return;
  }
#ifdef CMER_EDGE_WITH_CUDA
  AddLayerNormCuda(io, gamma, beta, rows, width, eps, ctx.stream);
#else
  RequireCuda("AddLayerNorm");
#endif
}

}  // namespace cmer_edge
