#include "core/lstm.h"

#include <stdexcept>
#include <string>

namespace cmer_edge {

void LstmRecurrence(Device device, const float* gates_x, const float* w_hh_t, const int32_t* lengths,
                    LstmShape shape, bool reverse, float* out, void* stream) {
  if (shape.batch < 0 || shape.steps < 1 || shape.hidden < 1) {
    throw std::invalid_argument("LstmRecurrence: bad shape batch=" + std::to_string(shape.batch) +
                                " steps=" + std::to_string(shape.steps) +
                                " hidden=" + std::to_string(shape.hidden));
  }
  for (int64_t b = 0; b < shape.batch; ++b) {
    if (lengths[b] < 1 || lengths[b] > shape.steps) {
      throw std::invalid_argument("LstmRecurrence: lengths[" + std::to_string(b) + "]=" +
                                  std::to_string(lengths[b]) + " outside 1.." + std::to_string(shape.steps));
    }
  }
  if (device == Device::kCpu) {
    LstmRecurrenceCpu(gates_x, w_hh_t, lengths, shape, reverse, out);
    return;
  }
#ifdef CMER_EDGE_WITH_CUDA
  if (shape.hidden > kMaxCudaLstmHidden) {
    throw std::invalid_argument("LstmRecurrence: CUDA kernel takes hidden <= " +
                                std::to_string(kMaxCudaLstmHidden) + ", got " + std::to_string(shape.hidden));
  }
  LstmRecurrenceCuda(gates_x, w_hh_t, lengths, shape, reverse, out, stream);
#else
  (void)stream;
  RequireCuda("LstmRecurrence");
#endif
}

}  // namespace cmer_edge
