// The one check of padded-sequence lengths, shared by the ops, the head and the bindings.
// Sequence b of a batch padded to `steps` rows holds lengths[b] valid rows, 1 <= lengths[b] <= steps.
#pragma once

#include <cstdint>
#include <string>

namespace cmer_edge {

// Throws std::invalid_argument (ValueError in Python) for the first b < batch whose length lies
// outside 1..steps:  "[<what>: ]lengths[<b>]=<value> outside 1..<steps>[<detail>]".
// `what` names the caller (empty: no prefix); `detail` is appended as is (e.g. " for inputs of shape …").
void CheckLengths(const int32_t* lengths, int64_t batch, int64_t steps, const char* what = "",
                  const std::string& detail = {});

}  // namespace cmer_edge
