// CPU attention: per (sequence, head, query) a vectorised dot product with each visible key, a
// softmax (simd.h exp), and the probability-weighted sum of the values. The head runs it on short
// sequences (T <= a few dozen utterances), so it stays single-threaded.
#include <cmath>
#include <vector>

#include "core/attention.h"
#include "core/simd.h"

namespace cmer_edge {
namespace {

using simd::F8;

float Dot(const float* a, const float* b, int64_t n) {
  F8 acc{};
  int64_t i = 0;
  for (; i + simd::kLanes <= n; i += simd::kLanes) acc += simd::Load(a + i) * simd::Load(b + i);
  float s = simd::HorizontalSum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void AttentionCpu(const AttentionShape& s, const AttentionIo& io) {
  const int64_t d = s.width / s.heads;
  const float sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
  std::vector<float> p(static_cast<size_t>(s.kv_steps));
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t len = io.lengths[b];
    for (int64_t i = 0; i < s.q_steps; ++i) {
      int64_t lo, hi;
      VisibleKeys(s, s.q_offset + i, len, &lo, &hi);
      const float* qrow = io.q + (b * s.q_steps + i) * io.ld_q;
      float* crow = io.ctx + (b * s.q_steps + i) * io.ld_ctx;
      for (int64_t h = 0; h < s.heads; ++h) {
        float* out = crow + h * d;
        for (int64_t c = 0; c < d; ++c) out[c] = 0.f;
        if (lo >= hi) continue;
        const float* qh = qrow + h * d;
        float mx = -INFINITY;
        for (int64_t j = lo; j < hi; ++j) {
          p[j] = Dot(qh, io.k + (b * s.kv_steps + j) * io.ld_k + h * d, d) / sqrt_d;
          mx = p[j] > mx ? p[j] : mx;
        }
        int64_t j = lo;
        for (; j + simd::kLanes <= hi; j += simd::kLanes) simd::Store(&p[j], simd::Exp(simd::Load(&p[j]) - mx));
        for (; j < hi; ++j) p[j] = simd::ExpScalar(p[j] - mx);
        float sum = 0.f;
        for (j = lo; j < hi; ++j) sum += p[j];
        for (j = lo; j < hi; ++j) {
          const float pj = p[j] / sum;
          const float* vj = io.v + (b * s.kv_steps + j) * io.ld_v + h * d;
          int64_t c = 0;
          for (; c + simd::kLanes <= d; c += simd::kLanes) {
            simd::Store(out + c, simd::Load(out + c) + simd::Load(vj + c) * pj);
          }
          for (; c < d; ++c) out[c] += vj[c] * pj;
        }
      }
    }
  }
}

}  // namespace cmer_edge
