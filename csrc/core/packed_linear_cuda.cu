// CUDA PackedLinear: one warp per output feature, weights row-major in their storage format and
// widened in registers; each warp handles up to kRows input rows per pass so a weight row is read
// once per pass. Lanes stride the k axis (4 consecutive weights per lane when in_dim % 4 == 0:
// one 16/8/4-byte load for fp32/bf16/int8), then a shuffle reduction; lane 0 applies the int8
// scale, bias and activation. Batch-1 products are bandwidth bound, which this layout serves.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/block_reduce_cuda.cuh"
#include "core/cuda_check.h"
#include "core/packed_linear.h"

namespace cmer_edge {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kRows = 4;

__device__ __forceinline__ float Widen(float w) { return w; }
__device__ __forceinline__ float Widen(uint16_t w) { return __uint_as_float(static_cast<uint32_t>(w) << 16); }
__device__ __forceinline__ float Widen(int8_t w) { return static_cast<float>(w); }

template <typename W>
struct Quad;
template <>
struct Quad<float> {
  using T = float4;
  static __device__ __forceinline__ void Get(const T& q, float* out) {
    out[0] = q.x; out[1] = q.y; out[2] = q.z; out[3] = q.w;
  }
};
template <>
struct Quad<uint16_t> {
  using T = ushort4;
  static __device__ __forceinline__ void Get(const T& q, float* out) {
    out[0] = Widen(q.x); out[1] = Widen(q.y); out[2] = Widen(q.z); out[3] = Widen(q.w);
  }
};
template <>
struct Quad<int8_t> {
  using T = char4;
  static __device__ __forceinline__ void Get(const T& q, float* out) {
    out[0] = static_cast<float>(q.x); out[1] = static_cast<float>(q.y);
    out[2] = static_cast<float>(q.z); out[3] = static_cast<float>(q.w);
  }
};

struct LinearArgs {
  const float* x;
  int64_t rows;
  int64_t ldx;
  float* y;
  int64_t ldy;
  const float* scale;
  const float* bias;
  int64_t k;
  int64_t m;
  int relu;
};

template <typename W, bool kVec4>
__global__ void PackedLinearKernel(const W* __restrict__ w, LinearArgs a) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (j >= a.m) return;
  const W* wj = w + j * a.k;
  for (int64_t r0 = 0; r0 < a.rows; r0 += kRows) {
    const int nr = a.rows - r0 < kRows ? static_cast<int>(a.rows - r0) : kRows;
    // Every loop over the kRows accumulators has a compile-time trip count (guarded by r < nr), so
    // acc[] stays in registers; a loop bounded by the runtime nr indexed it dynamically and put it
    // in local memory (checked by tests/test_build_variants.py on the compiled code).
    float acc[kRows] = {0.f, 0.f, 0.f, 0.f};
    if (kVec4) {
      const auto* wq = reinterpret_cast<const typename Quad<W>::T*>(wj);
      for (int64_t q = lane; q < a.k / 4; q += kWarp) {
        float wv[4];
        Quad<W>::Get(wq[q], wv);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (r < nr) {
            const float* xr = a.x + (r0 + r) * a.ldx + 4 * q;
            acc[r] += wv[0] * xr[0] + wv[1] * xr[1] + wv[2] * xr[2] + wv[3] * xr[3];
          }
        }
      }
    } else {
      for (int64_t i = lane; i < a.k; i += kWarp) {
        const float wv = Widen(wj[i]);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (r < nr) acc[r] += wv * a.x[(r0 + r) * a.ldx + i];
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= nr) break;
      float v = WarpSum(acc[r]);
      if (lane == 0) {
        if (a.scale != nullptr) v *= a.scale[j];
        if (a.bias != nullptr) v += a.bias[j];
        if (a.relu) v = fmaxf(v, 0.f);
        a.y[(r0 + r) * a.ldy + j] = v;
      }
    }
  }
}

template <typename W>
void LaunchPackedLinear(const PackedView& w, const LinearArgs& a, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((a.m + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const W* weights = static_cast<const W*>(w.weights);
  const LaunchShape shape{{blocks, 1, 1}, {kWarpsPerBlock * kWarp, 1, 1}, 0};
  if (a.k % 4 == 0) {
    if (!CheckLaunch("PackedLinearKernel", reinterpret_cast<const void*>(&PackedLinearKernel<W, true>), shape)) return;
    PackedLinearKernel<W, true><<<blocks, kWarpsPerBlock * kWarp, 0, stream>>>(weights, a);
  } else {
    if (!CheckLaunch("PackedLinearKernel", reinterpret_cast<const void*>(&PackedLinearKernel<W, false>), shape)) return;
    PackedLinearKernel<W, false><<<blocks, kWarpsPerBlock * kWarp, 0, stream>>>(weights, a);
  }
  CMER_EDGE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void PackedLinearCuda(const PackedView& w, const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy,
                      Activation act, void* stream) {
  const LinearArgs a{x, rows, ldx, y, ldy, w.scale, w.bias, w.in_dim, w.out_dim, act == Activation::kRelu ? 1 : 0};
  const auto s = static_cast<cudaStream_t>(stream);
  switch (w.format) {
    case WeightFormat::kF32: LaunchPackedLinear<float>(w, a, s); break;
    case WeightFormat::kBf16: LaunchPackedLinear<uint16_t>(w, a, s); break;
    case WeightFormat::kI8: LaunchPackedLinear<int8_t>(w, a, s); break;
  }
}

}  // namespace cmer_edge
