#include "core/attention.h"

#include <stdexcept>
#include <string>

namespace cmer_edge {

void Attention(const AttentionShape& s, const AttentionIo& io, const ExecContext& ctx) {
  if (s.batch < 0 || s.q_steps < 1 || s.kv_steps < 1 || s.width < 1 || s.heads < 1 || s.width % s.heads != 0 ||
      s.q_offset < 0) {
    throw std::invalid_argument("Attention: bad shape batch=" + std::to_string(s.batch) + " q_steps=" +
                                std::to_string(s.q_steps) + " kv_steps=" + std::to_string(s.kv_steps) +
                                " width=" + std::to_string(s.width) + " heads=" + std::to_string(s.heads) +
                                " q_offset=" + std::to_string(s.q_offset));
  }
  for (int64_t b = 0; b < s.batch; ++b) {
    if (io.lengths[b] < 1 || io.lengths[b] > s.kv_steps) {
      throw std::invalid_argument("Attention: lengths[" + std::to_string(b) + "]=" + std::to_string(io.lengths[b]) +
                                  " outside 1.." + std::to_string(s.kv_steps));
    }
  }
  if (s.batch == 0) return;
  if (ctx.device == Device::kCpu) {
    AttentionCpu(s, io);
    return;
  }
#ifdef CMER_EDGE_WITH_CUDA
  if (io.lengths_device == nullptr) throw std::invalid_argument("Attention: CUDA needs lengths_device");
  AttentionCuda(s, io, ctx.stream);
#else
  RequireCuda("Attention");
#endif
}

}  // namespace cmer_edge
