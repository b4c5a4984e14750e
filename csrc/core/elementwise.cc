#include "core/elementwise.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace cmer_edge {

void NormaliseRows(const NormaliseIo& io, int64_t rows, int64_t dim, const ExecContext& ctx) {
  if (rows < 0 || dim < 1) {
    throw std::invalid_argument("NormaliseRows: bad shape rows=" + std::to_string(rows) + " dim=" + std::to_string(dim));
  }
  if (rows == 0) return;
  if (ctx.device == Device::kCpu) {
    NormaliseRowsCpu(io, rows, dim);
    return;
  }
#ifdef CMER_EDGE_WITH_CUDA
  NormaliseRowsCuda(io, rows, dim, ctx.stream);
#else
  RequireCuda("NormaliseRows");
#endif
}

void CopyRows(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              const ExecContext& ctx) {
  if (rows <= 0 || cols <= 0) return;
  if (ctx.device == Device::kCpu) {
    for (int64_t r = 0; r < rows; ++r) std::memmove(dst + r * ld_dst, src + r * ld_src, cols * sizeof(float));
    return;
  }
  CopyDevice2D(dst, ld_dst * sizeof(float), src, ld_src * sizeof(float), cols * sizeof(float), rows, ctx.stream);
}

}  // namespace cmer_edge
