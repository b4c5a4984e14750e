#include "core/elementwise.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace cmer_edge {

void NormaliseRows(const NormaliseIo& io, int64_t rows, int64_t dim, const ExecContext& ctx) {
  if (rows < 0 || dim < 1) {
    throw std::invalid_argument("NormaliseRows: bad shape rows=" + std::to_string(rows) + " dim=" + std::to_string(dim));
  }
  if (rows == 0) return;
  DispatchOp("NormaliseRows", ctx.device, [&] { NormaliseRowsCpu(io, rows, dim); },
             CMER_EDGE_CUDA_ONLY([&] { NormaliseRowsCuda(io, rows, dim, ctx.stream); }));
}

void CopyRows(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              const ExecContext& ctx) {
  if (rows <= 0 || cols <= 0) return;
  // CopyDevice2D exists in every build (without CUDA it throws RequireCuda's error itself).
  DispatchOp(
      "CopyRows", ctx.device,
      [&] {
        for (int64_t r = 0; r < rows; ++r) std::memmove(dst + r * ld_dst, src + r * ld_src, cols * sizeof(float));
      },
      [&] {
        CopyDevice2D(dst, ld_dst * sizeof(float), src, ld_src * sizeof(float), cols * sizeof(float), rows, ctx.stream);
      });
}

}  // namespace cmer_edge
