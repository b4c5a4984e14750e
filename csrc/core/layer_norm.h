// y = LayerNorm(x + r) · γ + β over rows of `width` (PyTorch nn.LayerNorm: biased variance, eps
// inside the square root). r may be null (plain LayerNorm); y may alias x or r. Rows are strided:
// row i of x at x + i·ldx, of r at r + i·ldr, of y at y + i·ldy. On CUDA one block per row fuses
// the residual add, the two moments and the affine.
#pragma once

#include <cstdint>

#include "core/context.h"

namespace cmer_edge {

struct LayerNormIo {
  const float* x;
  int64_t ldx;
  const float* r;  // may be null
  int64_t ldr;
  float* y;
  int64_t ldy;
};

void AddLayerNorm(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                  float eps, const ExecContext& ctx);

void AddLayerNormCpu(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                     float eps);
#ifdef CMER_EDGE_WITH_CUDA
void AddLayerNormCuda(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                      float eps, void* stream);
#endif

}  // namespace cmer_edge
