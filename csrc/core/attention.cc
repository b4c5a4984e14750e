#include "core/attention.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"
#include "core/lengths.h"

namespace cmer_edge {

void Attention(const AttentionShape& s, const AttentionIo& io, const ExecContext& ctx) {
  if (s.batch < 0 || s.q_steps < 1 || s.kv_steps < 1 || s.width < 1 || s.heads < 1 || s.width % s.heads != 0 ||
      s.q_offset < 0) {
    throw std::invalid_argument("Attention: bad shape batch=" + std::to_string(s.batch) + " q_steps=" +
                                std::to_string(s.q_steps) + " kv_steps=" + std::to_string(s.kv_steps) +
                                " width=" + std::to_string(s.width) + " heads=" + std::to_string(s.heads) +
                                " q_offset=" + std::to_string(s.q_offset));
  }
  CheckLengths(io.lengths, s.batch, s.kv_steps, "Attention");
  if (s.batch == 0) return;
  DispatchOp(
      "Attention", ctx.device, [&] { AttentionCpu(s, io); },
      CMER_EDGE_CUDA_ONLY([&] {
        if (io.lengths_device == nullptr) throw std::invalid_argument("Attention: CUDA needs lengths_device");
        AttentionCuda(s, io, ctx.stream);
      }));
}

}  // namespace cmer_edge
