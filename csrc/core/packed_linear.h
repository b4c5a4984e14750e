// PackedLinear: y[r, :] = act(x[r, :] · Wᵀ + b) with W [out_dim, in_dim] (PyTorch layout) prepared
// once for one device and one weight format.
//
// Formats: kF32; kBf16 (weights rounded to bfloat16, nearest-even); kI8 (symmetric int8 per output
// channel: w ≈ scale[j] · q[j, k], scale[j] = max_k |w[j, k]| / 127). Activations and accumulation
// stay fp32 in every format; the weights are widened on the fly inside the kernel.
//
// Layouts. CPU: panels of kPanel output columns, panel p holds W[p·16 + c, k] at [k][c] (zero padded),
// so a kernel streams one contiguous block per panel and keeps 16 outputs × up to 6 rows in
// registers. CUDA: row-major [out_dim, in_dim] in the chosen format (one warp per output).
//
// Apply: x rows at x + r·ldx, outputs at y + r·ldy (strided views into wider activations, e.g. one
// slot of a concatenation). On CUDA every pointer is a device pointer. On CPU large products are
// split over ctx.pool by panels.
#pragma once

#include <cstdint>
#include <string>

#include "core/buffer.h"
#include "core/context.h"

namespace cmer_edge {

enum class WeightFormat { kF32, kBf16, kI8 };
enum class Activation { kNone, kRelu };

// "fp32" | "bf16" | "int8"; anything else throws std::invalid_argument naming the value.
WeightFormat ParseWeightFormat(const std::string& name);
const char* WeightFormatName(WeightFormat format);

// fp32 → bf16 bits, round to nearest even (NaN stays NaN).
uint16_t FloatToBf16(float value);
float Bf16ToFloat(uint16_t bits);

class PackedLinear {
 public:
  static constexpr int64_t kPanel = 16;

  PackedLinear() = default;
  // w [out_dim, in_dim] and bias [out_dim] (bias may be null) are host pointers, copied.
  PackedLinear(Device device, WeightFormat format, const float* w, const float* bias, int64_t out_dim,
               int64_t in_dim);

  Device device() const { return device_; }
  WeightFormat format() const { return format_; }
  int64_t out_dim() const { return out_dim_; }
  int64_t in_dim() const { return in_dim_; }
  bool has_bias() const { return !bias_.empty(); }
  const float* bias() const { return bias_.data(); }  // device pointer on CUDA, null without bias
  // Bytes one pass over the weights reads: the packed weights, plus scales and bias.
  int64_t weight_bytes() const;

  void Apply(const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy, Activation act,
             const ExecContext& ctx) const;

 private:
  Device device_ = Device::kCpu;
  WeightFormat format_ = WeightFormat::kF32;
  int64_t out_dim_ = 0;
  int64_t in_dim_ = 0;
  Buffer<uint8_t> weights_;  // the packed weights, element type per format_
  Buffer<float> scale_;      // kI8: [out_dim]
  Buffer<float> bias_;       // [out_dim] or empty
};

struct PackedView {  // what the per-device kernels get
  const void* weights;
  const float* scale;
  const float* bias;
  WeightFormat format;
  int64_t out_dim;
  int64_t in_dim;
};

void PackedLinearCpu(const PackedView& w, const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy,
                     Activation act, ThreadPool* pool);
// CPU panel packing: `rowmajor` [out_dim, in_dim] already in `format` (float / bf16 bits / int8) →
// `dst` of PackedBytesCpu(format, out_dim, in_dim) bytes.
int64_t PackedBytesCpu(WeightFormat format, int64_t out_dim, int64_t in_dim);
void PackWeightsCpu(WeightFormat format, const void* rowmajor, int64_t out_dim, int64_t in_dim, uint8_t* dst);
#ifdef CMER_EDGE_WITH_CUDA
void PackedLinearCuda(const PackedView& w, const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy,
                      Activation act, void* stream);
#endif

}  // namespace cmer_edge
