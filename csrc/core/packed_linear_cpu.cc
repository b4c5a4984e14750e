// CPU PackedLinear: register-blocked micro-kernels over 16-column weight panels.
//
// A tile is R rows (R <= 6) × 16 outputs held in 2R vector accumulators; each step over k loads
// 16 weights (widened from bf16/int8 on the fly) and broadcasts R inputs. One row (the live push)
// uses three interleaved accumulator sets instead, to hide the FMA latency; one row over small
// weights that stay in cache (an LSTM step's W_hh) runs four panels per pass and no prefetches.
// With more than 6 rows the k axis is blocked (256) and rows grouped (48) so a panel block and the
// rows it meets stay in cache. Panels are split over the thread pool when the product is large.
//
// Weights are read once per push from DRAM (they exceed the caches), so the kernels prefetch:
// one row streams 2 KiB ahead; a multi-row tile pulls the next panel's block in while its first
// row block computes (measured here: +15-30% on cold weights, on a GEMV and on 6-16 row tiles).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/packed_linear.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace cmer_edge {
namespace {

using simd::F8;
using simd::LoadWeights;

constexpr int64_t kP = PackedLinear::kPanel;
constexpr int kMaxRows = 6;
constexpr int64_t kKBlock = 256;
constexpr int64_t kRowGroup = 48;
constexpr int64_t kParallelMacs = int64_t{1} << 18;
// Weights up to this size are taken to stay in L2 between uses (W_hh of an LSTM with H <= 128).
constexpr int64_t kResidentBytes = int64_t{256} << 10;
constexpr int kResidentPanels = 4;
static_assert(kResidentPanels <= kMaxRows, "the one-row resident pass uses the tile buffer, kMaxRows panels");

template <int R, typename W>
CMER_EDGE_INLINE void Tile(const W* p, int64_t kn, const float* x, int64_t ldx, float* tile, const char* pf) {
  F8 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = F8{};
  for (int64_t k = 0; k < kn; ++k, p += kP) {
    if (pf != nullptr) __builtin_prefetch(pf + k * static_cast<int64_t>(sizeof(W)) * kP);
    const F8 w0 = LoadWeights(p);
    const F8 w1 = LoadWeights(p + 8);
    for (int r = 0; r < R; ++r) {
      const float xv = x[r * ldx + k];
      acc[r][0] += w0 * xv;
      acc[r][1] += w1 * xv;
    }
  }
  for (int r = 0; r < R; ++r) {
    simd::Store(tile + r * kP, acc[r][0]);
    simd::Store(tile + r * kP + 8, acc[r][1]);
  }
}

// One row: three interleaved accumulator pairs (six independent FMA chains) cover the FMA latency.
template <typename W>
CMER_EDGE_INLINE void TileOneRow(const W* p, int64_t kn, const float* x, float* tile) {
  F8 a0{}, a1{}, b0{}, b1{}, c0{}, c1{};
  int64_t k = 0;
  constexpr int64_t kLineBytes = 64, kAheadBytes = 2048;
  constexpr int64_t kStepBytes = 3 * kP * static_cast<int64_t>(sizeof(W));
  for (; k + 3 <= kn; k += 3, p += 3 * kP) {
    for (int64_t b = 0; b < kStepBytes; b += kLineBytes) {
      __builtin_prefetch(reinterpret_cast<const char*>(p) + kAheadBytes + b);
    }
    const float x0 = x[k], x1 = x[k + 1], x2 = x[k + 2];
    a0 += LoadWeights(p) * x0;
    a1 += LoadWeights(p + 8) * x0;
    b0 += LoadWeights(p + kP) * x1;
    b1 += LoadWeights(p + kP + 8) * x1;
    c0 += LoadWeights(p + 2 * kP) * x2;
    c1 += LoadWeights(p + 2 * kP + 8) * x2;
  }
  for (; k < kn; ++k, p += kP) {
    a0 += LoadWeights(p) * x[k];
    a1 += LoadWeights(p + 8) * x[k];
  }
  simd::Store(tile, (a0 + b0) + c0);
  simd::Store(tile + 8, (a1 + b1) + c1);
}

// One row over weights that stay in cache (an LSTM's W_hh, read every step): NP panels per pass
// share each broadcast x[k], so 2·NP independent accumulators cover the FMA latency, and nothing
// is prefetched (the streaming kernel above issues a prefetch per cache line, which here would
// cost more issue slots than the multiply-adds).
template <int NP, typename W>
CMER_EDGE_INLINE void PanelsOneRow(const W* p, int64_t kn, const float* x, float* tile) {
  F8 acc[NP][2];
  for (int j = 0; j < NP; ++j) acc[j][0] = acc[j][1] = F8{};
  for (int64_t k = 0; k < kn; ++k) {
    const float xv = x[k];
    for (int j = 0; j < NP; ++j) {
      const W* q = p + (j * kn + k) * kP;
      acc[j][0] += LoadWeights(q) * xv;
      acc[j][1] += LoadWeights(q + 8) * xv;
    }
  }
  for (int j = 0; j < NP; ++j) {
    simd::Store(tile + j * kP, acc[j][0]);
    simd::Store(tile + j * kP + 8, acc[j][1]);
  }
}

template <typename W>
void TileRows(int rows, const W* p, int64_t kn, const float* x, int64_t ldx, float* tile, const char* pf = nullptr) {
  switch (rows) {
    case 1: TileOneRow(p, kn, x, tile); break;
    case 2: Tile<2>(p, kn, x, ldx, tile, pf); break;
    case 3: Tile<3>(p, kn, x, ldx, tile, pf); break;
    case 4: Tile<4>(p, kn, x, ldx, tile, pf); break;
    case 5: Tile<5>(p, kn, x, ldx, tile, pf); break;
    default: Tile<6>(p, kn, x, ldx, tile, pf); break;
  }
}

// Adds (or stores, on the first k block) a tile into y; on the last block applies scale, bias, act.
void Merge(const float* tile, int rows, int64_t col0, int64_t cols, float* y, int64_t ldy, bool first, bool last,
           const PackedView& w, Activation act) {
  if (cols == kP) {  // a whole panel: 8 lanes at a time
    for (int r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < kP; c += simd::kLanes) {
        float* yc = y + r * ldy + col0 + c;
        F8 v = simd::Load(tile + r * kP + c);
        if (!first) v += simd::Load(yc);
        if (last) {
          if (w.scale != nullptr) v *= simd::Load(w.scale + col0 + c);
          if (w.bias != nullptr) v += simd::Load(w.bias + col0 + c);
          if (act == Activation::kRelu) v = simd::Max(v, F8{});
        }
        simd::Store(yc, v);
      }
    }
    return;
  }
  for (int r = 0; r < rows; ++r) {
    float* yr = y + r * ldy + col0;
    const float* tr = tile + r * kP;
    for (int64_t c = 0; c < cols; ++c) {
      float v = first ? tr[c] : yr[c] + tr[c];
      if (last) {
        if (w.scale != nullptr) v *= w.scale[col0 + c];
        if (w.bias != nullptr) v += w.bias[col0 + c];
        if (act == Activation::kRelu) v = v > 0.f ? v : 0.f;
      }
      yr[c] = v;
    }
  }
}

// Widens one k block of a bf16/int8 panel to fp32 once, so that many row blocks reuse it.
template <typename W>
void WidenPanel(const W* p, int64_t kn, float* out) {
  for (int64_t i = 0; i < kn * kP; i += simd::kLanes) simd::Store(out + i, LoadWeights(p + i));
}

template <typename W>
void RunPanelsOneRowResident(const PackedView& w, int64_t p0, int64_t p1, const float* x, float* y,
                             Activation act) {
  const int64_t k_dim = w.in_dim;
  const W* base = static_cast<const W*>(w.weights);
  alignas(64) float tile[kMaxRows * kP];
  for (int64_t p = p0; p < p1;) {
    const int np = static_cast<int>(std::min<int64_t>(kResidentPanels, p1 - p));
    const W* panel = base + p * k_dim * kP;
    switch (np) {
      case 1: PanelsOneRow<1>(panel, k_dim, x, tile); break;
      case 2: PanelsOneRow<2>(panel, k_dim, x, tile); break;
      case 3: PanelsOneRow<3>(panel, k_dim, x, tile); break;
      default: PanelsOneRow<kResidentPanels>(panel, k_dim, x, tile); break;
    }
    for (int j = 0; j < np; ++j, ++p) {
      Merge(tile + j * kP, 1, p * kP, std::min(kP, w.out_dim - p * kP), y, 0, true, true, w, act);
    }
  }
}

template <typename W>
void RunPanels(const PackedView& w, int64_t p0, int64_t p1, const float* x, int64_t rows, int64_t ldx, float* y,
               int64_t ldy, Activation act) {
  const int64_t k_dim = w.in_dim;
  if (rows == 1 && PackedBytesCpu(w.format, w.out_dim, k_dim) <= kResidentBytes) {
    RunPanelsOneRowResident<W>(w, p0, p1, x, y, act);
    return;
  }
  const W* base = static_cast<const W*>(w.weights);
  const int64_t kc = rows <= kMaxRows ? k_dim : kKBlock;
  constexpr bool kWiden = !std::is_same_v<W, float>;
  alignas(64) float tile[kMaxRows * kP];
  std::vector<float> widened(kWiden && rows > kMaxRows ? static_cast<size_t>(kKBlock * kP) : 0);
  for (int64_t k0 = 0; k0 < k_dim; k0 += kc) {
    const int64_t kn = std::min(kc, k_dim - k0);
    const bool first = k0 == 0, last = k0 + kn == k_dim;
    for (int64_t g0 = 0; g0 < rows; g0 += kRowGroup) {
      const int64_t g1 = std::min(rows, g0 + kRowGroup);
      for (int64_t p = p0; p < p1; ++p) {
        const W* panel = base + (p * k_dim + k0) * kP;
        const int64_t cols = std::min(kP, w.out_dim - p * kP);
        if (!widened.empty()) WidenPanel(panel, kn, widened.data());
        for (int64_t r0 = g0; r0 < g1; r0 += kMaxRows) {
          const int r = static_cast<int>(std::min<int64_t>(kMaxRows, g1 - r0));
          if (widened.empty()) {
            // First row block of a panel: pull the next panel's block in while this one computes.
            const char* pf = nullptr;
            if (r0 == g0 && rows > 1 && p + 1 < p1) pf = reinterpret_cast<const char*>(panel + k_dim * kP);
            TileRows(r, panel, kn, x + r0 * ldx + k0, ldx, tile, pf);
          } else {
            TileRows(r, widened.data(), kn, x + r0 * ldx + k0, ldx, tile);
          }
          Merge(tile, r, p * kP, cols, y + r0 * ldy, ldy, first, last, w, act);
        }
      }
    }
  }
}

template <typename W>
void Run(const PackedView& w, const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy, Activation act,
         ThreadPool* pool) {
  const int64_t panels = (w.out_dim + kP - 1) / kP;
  const int64_t macs = rows * w.out_dim * w.in_dim;
  const int threads = pool != nullptr ? pool->size() : 1;
  if (threads <= 1 || macs < kParallelMacs || panels < 2) {
    RunPanels<W>(w, 0, panels, x, rows, ldx, y, ldy, act);
    return;
  }
  const int64_t chunks = std::min<int64_t>(panels, 4 * threads);
  pool->ParallelFor(chunks, [&](int64_t c) {
    const int64_t p0 = panels * c / chunks, p1 = panels * (c + 1) / chunks;
    RunPanels<W>(w, p0, p1, x, rows, ldx, y, ldy, act);
  });
}

template <typename W>
void Pack(const W* rowmajor, int64_t out_dim, int64_t in_dim, W* dst) {
  const int64_t panels = (out_dim + kP - 1) / kP;
  for (int64_t p = 0; p < panels; ++p) {
    W* panel = dst + p * in_dim * kP;
    for (int64_t c = 0; c < kP; ++c) {
      const int64_t j = p * kP + c;
      for (int64_t k = 0; k < in_dim; ++k) panel[k * kP + c] = j < out_dim ? rowmajor[j * in_dim + k] : W{};
    }
  }
}

}  // namespace

int64_t PackedBytesCpu(WeightFormat format, int64_t out_dim, int64_t in_dim) {
  const int64_t padded = (out_dim + kP - 1) / kP * kP;
  const int64_t elem = format == WeightFormat::kF32 ? 4 : format == WeightFormat::kBf16 ? 2 : 1;
  return padded * in_dim * elem;
}

void PackWeightsCpu(WeightFormat format, const void* rowmajor, int64_t out_dim, int64_t in_dim, uint8_t* dst) {
  switch (format) {
    case WeightFormat::kF32:
      Pack(static_cast<const float*>(rowmajor), out_dim, in_dim, reinterpret_cast<float*>(dst));
      break;
    case WeightFormat::kBf16:
      Pack(static_cast<const uint16_t*>(rowmajor), out_dim, in_dim, reinterpret_cast<uint16_t*>(dst));
      break;
    case WeightFormat::kI8:
      Pack(static_cast<const int8_t*>(rowmajor), out_dim, in_dim, reinterpret_cast<int8_t*>(dst));
      break;
  }
}

void PackedLinearCpu(const PackedView& w, const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy,
                     Activation act, ThreadPool* pool) {
  switch (w.format) {
    case WeightFormat::kF32: Run<float>(w, x, rows, ldx, y, ldy, act, pool); break;
    case WeightFormat::kBf16: Run<uint16_t>(w, x, rows, ldx, y, ldy, act, pool); break;
    case WeightFormat::kI8: Run<int8_t>(w, x, rows, ldx, y, ldy, act, pool); break;
  }
}

}  // namespace cmer_edge
