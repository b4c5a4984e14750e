#include "core/elementwise.h"
#include "core/simd.h"

namespace cmer_edge {

void NormaliseRowsCpu(const NormaliseIo& io, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float m = io.mask != nullptr ? io.mask[r * io.ld_mask] : 1.f;
    const float* xr = io.x + r * io.ldx;
    float* yr = io.y + r * io.ldy;
    int64_t k = 0;
    for (; k + simd::kLanes <= dim; k += simd::kLanes) {
      const simd::F8 v = (simd::Load(xr + k) - simd::Load(io.mean + k)) * simd::Load(io.inv_std + k);
      simd::Store(yr + k, v * m);
    }
    for (; k < dim; ++k) yr[k] = (xr[k] - io.mean[k]) * io.inv_std[k] * m;
  }
}

}  // namespace cmer_edge
