#include "core/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace cmer_edge {
namespace {

double SumRange(const float* p, int64_t n) {
  simd::F8 a{}, b{}, c{}, d{};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a += simd::Load(p + i);
    b += simd::Load(p + i + 8);
    c += simd::Load(p + i + 16);
    d += simd::Load(p + i + 24);
  }
  double s = simd::HorizontalSum((a + b) + (c + d));
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace

BandwidthResult MeasureReadBandwidth(int64_t bytes, int passes, ThreadPool* pool) {
  if (bytes < (int64_t{1} << 20) || passes < 1) {
    throw std::invalid_argument("MeasureReadBandwidth: need bytes >= 1 MiB and passes >= 1, got bytes=" +
                                std::to_string(bytes) + " passes=" + std::to_string(passes));
  }
  const int64_t n = bytes / static_cast<int64_t>(sizeof(float));
  Buffer<float> buf(Device::kCpu, static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) buf.data()[i] = static_cast<float>(i % 7) * 0.25f;
  const int threads = pool != nullptr ? pool->size() : 1;
  const int64_t chunks = 8 * threads;
  std::vector<double> partial(static_cast<size_t>(chunks));
  std::vector<double> rates;
  double checksum = 0.0;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto body = [&](int64_t c) {
      const int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
      partial[c] = SumRange(buf.data() + lo, hi - lo);
    };
    if (pool != nullptr) {
      pool->ParallelFor(chunks, body);
    } else {
      for (int64_t c = 0; c < chunks; ++c) body(c);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    checksum = 0.0;
    for (double v : partial) checksum += v;
    if (pass > 0) rates.push_back(static_cast<double>(n) * sizeof(float) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return {rates.back(), rates[rates.size() / 2], checksum};
}

}  // namespace cmer_edge
