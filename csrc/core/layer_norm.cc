#include "core/layer_norm.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace cmer_edge {

void AddLayerNorm(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                  float eps, const ExecContext& ctx) {
  if (rows < 0 || width < 1) {
    throw std::invalid_argument("AddLayerNorm: bad shape rows=" + std::to_string(rows) +
                                " width=" + std::to_string(width));
  }
  if (rows == 0) return;
  DispatchOp("AddLayerNorm", ctx.device, [&] { AddLayerNormCpu(io, gamma, beta, rows, width, eps); },
             CMER_EDGE_CUDA_ONLY([&] { AddLayerNormCuda(io, gamma, beta, rows, width, eps, ctx.stream); }));
}

}  // namespace cmer_edge
