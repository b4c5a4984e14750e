// PackedLinear: quantisation, packing for the device, and dispatch.
#include "core/packed_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"

namespace cmer_edge {
namespace {

size_t ElementBytes(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return 4;
    case WeightFormat::kBf16: return 2;
    case WeightFormat::kI8: return 1;
  }
  return 4;
}

// Row-major [out_dim, in_dim] weights converted to `format` (the CUDA layout, and the CPU packer's input).
std::vector<uint8_t> RowMajor(WeightFormat format, const float* w, const float* scale, int64_t out_dim,
                              int64_t in_dim) {
  const size_t count = static_cast<size_t>(out_dim * in_dim);
  std::vector<uint8_t> out(count * ElementBytes(format));
  if (format == WeightFormat::kF32) {
    std::memcpy(out.data(), w, count * sizeof(float));
  } else if (format == WeightFormat::kBf16) {
    auto* dst = reinterpret_cast<uint16_t*>(out.data());
    for (size_t i = 0; i < count; ++i) dst[i] = FloatToBf16(w[i]);
  } else {
    auto* dst = reinterpret_cast<int8_t*>(out.data());
    for (int64_t j = 0; j < out_dim; ++j) {
      const float inv = scale[j] > 0.f ? 1.f / scale[j] : 0.f;
      for (int64_t k = 0; k < in_dim; ++k) {
        const float q = std::nearbyint(w[j * in_dim + k] * inv);
        dst[j * in_dim + k] = static_cast<int8_t>(std::clamp(q, -127.f, 127.f));
      }
    }
  }
  return out;
}

}  // namespace

WeightFormat ParseWeightFormat(const std::string& name) {
  if (name == "fp32") return WeightFormat::kF32;
  if (name == "bf16") return WeightFormat::kBf16;
  if (name == "int8") return WeightFormat::kI8;
  throw std::invalid_argument("precision must be 'fp32', 'bf16' or 'int8', got '" + name + "'");
}

const char* WeightFormatName(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return "fp32";
    case WeightFormat::kBf16: return "bf16";
    case WeightFormat::kI8: return "int8";
  }
  return "?";
}

uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  }
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float Bf16ToFloat(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

PackedLinear::PackedLinear(Device device, WeightFormat format, const float* w, const float* bias, int64_t out_dim,
                           int64_t in_dim)
    : device_(device), format_(format), out_dim_(out_dim), in_dim_(in_dim) {
  if (out_dim <= 0 || in_dim <= 0) {
    throw std::invalid_argument("PackedLinear: bad shape out_dim=" + std::to_string(out_dim) +
                                " in_dim=" + std::to_string(in_dim));
  }
  if (device == Device::kCuda) RequireCuda("PackedLinear");
  std::vector<float> scale;
  if (format == WeightFormat::kI8) {
    scale.resize(static_cast<size_t>(out_dim));
    for (int64_t j = 0; j < out_dim; ++j) {
      float m = 0.f;
      for (int64_t k = 0; k < in_dim; ++k) m = std::max(m, std::fabs(w[j * in_dim + k]));
      scale[j] = m / 127.f;
    }
    scale_ = Buffer<float>(device, scale.data(), scale.size());
  }
  if (bias != nullptr) bias_ = Buffer<float>(device, bias, static_cast<size_t>(out_dim));
  const std::vector<uint8_t> rows = RowMajor(format, w, scale.data(), out_dim, in_dim);
  if (device == Device::kCpu) {
    weights_ = Buffer<uint8_t>(device, static_cast<size_t>(PackedBytesCpu(format, out_dim, in_dim)));
    PackWeightsCpu(format, rows.data(), out_dim, in_dim, weights_.data());
  } else {
    weights_ = Buffer<uint8_t>(device, rows.data(), rows.size());
  }
}

int64_t PackedLinear::weight_bytes() const {
  return static_cast<int64_t>(out_dim_ * in_dim_ * ElementBytes(format_) + scale_.bytes() + bias_.bytes());
}

void PackedLinear::Apply(const float* x, int64_t rows, int64_t ldx, float* y, int64_t ldy, Activation act,
                         const ExecContext& ctx) const {
  if (rows <= 0) return;
  if (weights_.empty()) throw std::logic_error("PackedLinear::Apply on an empty layer");
  if (ctx.device != device_) {
    throw std::invalid_argument(std::string("PackedLinear: weights live on ") + DeviceName(device_) +
                                ", asked to run on " + DeviceName(ctx.device));
  }
  const PackedView view{weights_.data(), scale_.data(), bias_.data(), format_, out_dim_, in_dim_};
  DispatchOp("PackedLinear", device_, [&] { PackedLinearCpu(view, x, rows, ldx, y, ldy, act, ctx.pool); },
             CMER_EDGE_CUDA_ONLY([&] { PackedLinearCuda(view, x, rows, ldx, y, ldy, act, ctx.stream); }));
}

}  // namespace cmer_edge
