// Masked multi-head scaled dot-product attention over already projected Q, K, V:
//   ctx_h = softmax(Q_h K_hᵀ / √d + mask) V_h,  d = width / heads, heads concatenated.
// Self-attention passes the same sequence's projections as Q and K/V; cross-attention the other
// modality's as K/V. Key j of sequence b is visible to query position p when j < lengths[b] and,
// for windowed attention, p - window_left <= j <= p + window_right (-1 = unbounded on that side:
// both -1 is full attention, (W-1, 0) the causal live window). Query row i sits at position
// q_offset + i, so a caller can compute only the last rows (the live session's final layer).
// A query with no visible key gets a zero context (PyTorch would produce NaN there).
//
// Rows: query i of sequence b is row b·q_steps + i of q (stride ld_q) and ctx (stride ld_ctx);
// key j is row b·kv_steps + j of k and v.
#pragma once

#include <cstdint>

#include "core/context.h"

namespace cmer_edge {

struct AttentionShape {
  int64_t batch = 0;
  int64_t q_steps = 0;
  int64_t kv_steps = 0;
  int64_t width = 0;
  int64_t heads = 1;
  int64_t q_offset = 0;
  int64_t window_left = -1;
  int64_t window_right = -1;
};

struct AttentionIo {
  const float* q;
  int64_t ld_q;
  const float* k;
  int64_t ld_k;
  const float* v;
  int64_t ld_v;
  float* ctx;
  int64_t ld_ctx;
  const int32_t* lengths;         // host [batch], 1..kv_steps
  const int32_t* lengths_device;  // CUDA: the same in device memory
};

void Attention(const AttentionShape& shape, const AttentionIo& io, const ExecContext& ctx);

void AttentionCpu(const AttentionShape& shape, const AttentionIo& io);
#ifdef CMER_EDGE_WITH_CUDA
void AttentionCuda(const AttentionShape& shape, const AttentionIo& io, void* stream);
#endif

// The key range [lo, hi) query position `pos` of a sequence of valid length `len` may see.
inline void VisibleKeys(const AttentionShape& s, int64_t pos, int64_t len, int64_t* lo, int64_t* hi) {
  *lo = s.window_left < 0 ? 0 : (pos - s.window_left > 0 ? pos - s.window_left : 0);
  const int64_t right = s.window_right < 0 ? len : pos + s.window_right + 1;
  *hi = right < len ? right : len;
}

}  // namespace cmer_edge
