// The CM-RoBERTa head's shape and switches, as in python/cmer_edge/model/config.py (HeadConfig),
// plus how to run it (HeadOptions) and the weights it is built from (TensorMap: PyTorch state-dict
// names → host float32 arrays, e.g. "audio.encoder.lstm.weight_ih_l0").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/packed_linear.h"

namespace cmer_edge {

struct HeadConfig {
  int64_t audio_dim = 12696;
  int64_t text_dim = 4096;
  int64_t hidden = 128;
  int64_t sca_layers = 2;
  int64_t num_heads = 4;
  int64_t ffn_dim = 512;
  int64_t classifier_dim = 256;
  int64_t num_classes = 7;
  std::string modalities = "both";  // "both" | "audio" | "text"
  bool use_sca = true;

  // Throws std::invalid_argument naming the bad field and value.
  void Validate() const;
  std::string ToString() const;

  bool uses_audio() const { return modalities != "text"; }
  bool uses_text() const { return modalities != "audio"; }
  bool bimodal() const { return modalities == "both"; }
  int64_t num_streams() const { return bimodal() ? 2 : 1; }
  int64_t width() const { return 2 * hidden; }
  bool has_cross() const { return use_sca && bimodal(); }
  // 2h-wide vectors the classifier concatenates (same rule as the Python config).
  int64_t num_branches() const { return num_streams() * ((has_cross() ? 2 : 1) + 1) + 1; }
};

struct HeadOptions {
  Device device = Device::kCpu;
  // Format of the large per-utterance input projections (LSTM inputs + residual branch);
  // every other weight stays fp32.
  WeightFormat input_format = WeightFormat::kF32;
  int num_threads = 0;  // CPU threads incl. the caller; 0 = all hardware threads
};

struct TensorView {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};
using TensorMap = std::map<std::string, TensorView>;

}  // namespace cmer_edge
