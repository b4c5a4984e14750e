#include "core/lengths.h"

#include <stdexcept>

namespace cmer_edge {

void CheckLengths(const int32_t* lengths, int64_t batch, int64_t steps, const char* what,
                  const std::string& detail) {
  for (int64_t b = 0; b < batch; ++b) {
    if (lengths[b] >= 1 && lengths[b] <= steps) continue;
    const std::string prefix = *what != '\0' ? std::string(what) + ": " : std::string();
    throw std::invalid_argument(prefix + "lengths[" + std::to_string(b) + "]=" + std::to_string(lengths[b]) +
                                " outside 1.." + std::to_string(steps) + detail);
  }
}

}  // namespace cmer_edge
