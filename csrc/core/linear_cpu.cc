// CPU reference for Linear: each output is a dot product over K, four outputs at a time so the
// x row is read once per four weight rows. Reductions are vectorised with `omp simd`.
#include <algorithm>

#include "core/linear.h"

namespace cmer_edge {
namespace {

inline float Dot(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

void LinearCpu(const float* x, const float* w, const float* b, LinearShape shape, float* y) {
  const int64_t k = shape.in_dim;
  const int64_t m = shape.out_dim;
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* xr = x + r * k;
    float* yr = y + r * m;
    int64_t j = 0;
    for (; j + 4 <= m; j += 4) {
      const float* w0 = w + j * k;
      const float* w1 = w0 + k;
      const float* w2 = w1 + k;
      const float* w3 = w2 + k;
      float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t i = 0; i < k; ++i) {
        const float xi = xr[i];
        a0 += w0[i] * xi;
        a1 += w1[i] * xi;
        a2 += w2[i] * xi;
        a3 += w3[i] * xi;
      }
      yr[j] = a0;
      yr[j + 1] = a1;
      yr[j + 2] = a2;
      yr[j + 3] = a3;
    }
    for (; j < m; ++j) yr[j] = Dot(w + j * k, xr, k);
    if (b != nullptr) {
      for (int64_t jj = 0; jj < m; ++jj) yr[jj] += b[jj];
    }
  }
}

}  // namespace cmer_edge
