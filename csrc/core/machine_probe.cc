#include "core/machine_probe.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace cmer_edge {
namespace {

using simd::F8;

double SumRange(const float* p, int64_t n) {
  F8 a{}, b{}, c{}, d{};
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

// Twelve independent multiply-add chains: enough to cover the latency of the vector unit, as the
// kernels' 6-row x 16-column tiles do. acc*m + a stays bounded (m < 1), so nothing overflows.
constexpr int kChains = 12;
constexpr int64_t kChainMacsPerIteration = kChains * simd::kLanes;

double MultiplyAddChains(int64_t iterations, float seed) {
  F8 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = simd::Splat(seed + 0.01f * static_cast<float>(i));
  const F8 m = simd::Splat(0.999f), a = simd::Splat(0.001f);
  for (int64_t k = 0; k < iterations; ++k) {
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * m + a;
  }
  F8 sum{};
  for (int i = 0; i < kChains; ++i) sum += acc[i];
  return simd::HorizontalSum(sum);
}

// Runs body(chunk) for `chunks` chunks per pass (over the pool when there is one), one warm-up pass
// then `passes` timed ones; rate = units_per_pass / seconds / 1e9.
ProbeResult TimePasses(int passes, int64_t chunks, double units_per_pass, ThreadPool* pool,
                       const std::function<double(int64_t)>& body) {
  std::vector<double> partial(static_cast<size_t>(chunks));
  std::vector<double> rates;
  double checksum = 0.0;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = [&](int64_t c) { partial[c] = body(c); };
    if (pool != nullptr) {
      pool->ParallelFor(chunks, run);
    } else {
      for (int64_t c = 0; c < chunks; ++c) run(c);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    checksum = 0.0;
    for (double v : partial) checksum += v;
    if (pass > 0) rates.push_back(units_per_pass / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return {rates.back(), rates[rates.size() / 2], checksum};
}

}  // namespace

ProbeResult MeasureReadBandwidth(int64_t bytes, int passes, ThreadPool* pool) {
  if (bytes < (int64_t{1} << 20) || passes < 1) {
    throw std::invalid_argument("MeasureReadBandwidth: need bytes >= 1 MiB and passes >= 1, got bytes=" +
                                std::to_string(bytes) + " passes=" + std::to_string(passes));
  }
  const int64_t n = bytes / static_cast<int64_t>(sizeof(float));
  Buffer<float> buf(Device::kCpu, static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) buf.data()[i] = static_cast<float>(i % 7) * 0.25f;
  const int threads = pool != nullptr ? pool->size() : 1;
  const int64_t chunks = 8 * threads;
  return TimePasses(passes, chunks, static_cast<double>(n) * sizeof(float), pool, [&](int64_t c) {
    const int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
    return SumRange(buf.data() + lo, hi - lo);
  });
}

ProbeResult MeasureMultiplyAddRate(int passes, ThreadPool* pool) {
  if (passes < 1) {
    throw std::invalid_argument("MeasureMultiplyAddRate: need passes >= 1, got " + std::to_string(passes));
  }
  const int threads = pool != nullptr ? pool->size() : 1;
  constexpr int64_t kIterations = (int64_t{1} << 28) / kChainMacsPerIteration;
  const double macs = static_cast<double>(threads) * kIterations * kChainMacsPerIteration;
  return TimePasses(passes, threads, macs, pool,
                    [](int64_t c) { return MultiplyAddChains(kIterations, 0.1f * static_cast<float>(c)); });
}

}  // namespace cmer_edge
