// Small elementwise ops of the head.
//   NormaliseRows: y[r, k] = (x[r, k] - mean[k]) · inv_std[k] · mask[r · ld_mask]
//     (the per-stream feature normalisation; mask is the `present` flag of the modality, null = 1).
//   CopyRows: rows × cols floats between strided row views (a slot of a concatenation).
#pragma once

#include <cstdint>

#include "core/context.h"

namespace cmer_edge {

struct NormaliseIo {
  const float* x;
  int64_t ldx;
  const float* mean;
  const float* inv_std;
  const float* mask;  // may be null
  int64_t ld_mask;
  float* y;
  int64_t ldy;
};

void NormaliseRows(const NormaliseIo& io, int64_t rows, int64_t dim, const ExecContext& ctx);

void CopyRows(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              const ExecContext& ctx);

void NormaliseRowsCpu(const NormaliseIo& io, int64_t rows, int64_t dim);
#ifdef CMER_EDGE_WITH_CUDA
void NormaliseRowsCuda(const NormaliseIo& io, int64_t rows, int64_t dim, void* stream);
#endif

}  // namespace cmer_edge
