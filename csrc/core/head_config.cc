#include "core/head_config.h"

#include <stdexcept>

namespace cmer_edge {

void HeadConfig::Validate() const {
  const std::pair<const char*, int64_t> positive[] = {
      {"audio_dim", audio_dim}, {"text_dim", text_dim},         {"hidden", hidden},
      {"sca_layers", sca_layers}, {"num_heads", num_heads},     {"ffn_dim", ffn_dim},
      {"classifier_dim", classifier_dim}, {"num_classes", num_classes}};
  for (const auto& [name, value] : positive) {
    if (value < 1) {
      throw std::invalid_argument(std::string("HeadConfig.") + name + " must be >= 1, got " + std::to_string(value));
    }
  }
  if (width() % num_heads != 0) {
    throw std::invalid_argument("HeadConfig: 2*hidden=" + std::to_string(width()) + " must divide by num_heads=" +
                                std::to_string(num_heads));
  }
  if (modalities != "both" && modalities != "audio" && modalities != "text") {
    throw std::invalid_argument("HeadConfig.modalities must be 'both', 'audio' or 'text', got '" + modalities + "'");
  }
}

std::string HeadConfig::ToString() const {
  return "HeadConfig(audio_dim=" + std::to_string(audio_dim) + ", text_dim=" + std::to_string(text_dim) +
         ", hidden=" + std::to_string(hidden) + ", sca_layers=" + std::to_string(sca_layers) +
         ", num_heads=" + std::to_string(num_heads) + ", ffn_dim=" + std::to_string(ffn_dim) +
         ", classifier_dim=" + std::to_string(classifier_dim) + ", num_classes=" + std::to_string(num_classes) +
         ", modalities='" + modalities + "', use_sca=" + (use_sca ? "True" : "False") + ")";
}

}  // namespace cmer_edge
