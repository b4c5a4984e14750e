// CPU LayerNorm(x + r): the sum goes through a row buffer, moments are accumulated in double (the
// rows are short, and it keeps the result within rounding of PyTorch's), the affine is vectorised.
#include <cmath>
#include <vector>

#include "core/layer_norm.h"
#include "core/simd.h"

namespace cmer_edge {

void AddLayerNormCpu(const LayerNormIo& io, const float* gamma, const float* beta, int64_t rows, int64_t width,
                     float eps) {
  std::vector<float> sum(static_cast<size_t>(width));
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = io.x + i * io.ldx;
    for (int64_t c = 0; c < width; ++c) sum[c] = io.r != nullptr ? xr[c] + io.r[i * io.ldr + c] : xr[c];
    double mean = 0.0;
    for (int64_t c = 0; c < width; ++c) mean += sum[c];
    mean /= static_cast<double>(width);
    double var = 0.0;
    for (int64_t c = 0; c < width; ++c) {
      const double dc = sum[c] - mean;
      var += dc * dc;
    }
    var /= static_cast<double>(width);
    const float m = static_cast<float>(mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    float* yr = io.y + i * io.ldy;
    int64_t c = 0;
    for (; c + simd::kLanes <= width; c += simd::kLanes) {
      const simd::F8 v = (simd::Load(&sum[c]) - m) * rstd;
      simd::Store(yr + c, v * simd::Load(gamma + c) + simd::Load(beta + c));
    }
    for (; c < width; ++c) yr[c] = (sum[c] - m) * rstd * gamma[c] + beta[c];
  }
}

}  // namespace cmer_edge
