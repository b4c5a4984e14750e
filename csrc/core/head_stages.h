// Building blocks shared by Head::Forward (whole dialogues, batched) and Session::Push (one window,
// only its last row read): one stream's encoder + self-attention stack, an SCA attention layer,
// the cross-attention layer pair, and where each branch sits in the classifier's concatenation.
// Every pointer is on the context's device; rows are strided (ld) views into wider buffers.
#pragma once

#include <cstdint>
#include <functional>

#include "core/buffer.h"
#include "core/context.h"
#include "core/head_config.h"
#include "core/head_weights.h"

namespace cmer_edge {

struct SeqInfo {
  int64_t batch = 0;
  int64_t steps = 0;
  const int32_t* lengths = nullptr;         // host
  const int32_t* lengths_device = nullptr;  // CUDA
};

// Per-task scratch for attention layers over up to `rows` rows.
struct StageScratch {
  StageScratch() = default;
  StageScratch(Device device, int64_t rows, const HeadConfig& cfg);
  Buffer<float> kv, q, ctx, x1, ffn;
};

// Slot (in units of 2h columns) of each branch in the classifier input, as CMRoberta.forward
// concatenates them: [cross_a, cross_t,] self/encoder per stream, mid fusion, residual per stream.
struct BranchSlots {
  explicit BranchSlots(const HeadConfig& cfg);
  int64_t cross_a = -1, cross_t = -1, mid = 0;
  int64_t self[2] = {0, 0};
  int64_t residual[2] = {0, 0};
};

// Query rows of an attention layer: q_steps rows per sequence (x, query, out), the queries at
// positions q_offset.. of the memory sequence. out may alias x (self layers run in place).
struct LayerRows {
  const float* x;
  int64_t ldx;
  const float* query;
  int64_t ld_query;
  float* out;
  int64_t ld_out;
  int64_t q_steps;
  int64_t q_offset;
};

// x <- LN1(x + O(attn(Q(query), KV(memory)))); out = LN2(x + FFN(x)).
void RunAttentionLayer(const AttentionLayerWeights& w, const HeadConfig& cfg, const SeqInfo& seq,
                       const float* memory, int64_t ld_memory, const LayerRows& rows, StageScratch& s,
                       const ExecContext& ctx);

struct StreamIo {
  const float* proj;  // projected input rows (StreamWeights column layout), seq.batch·seq.steps rows
  int64_t ld_proj;
  float* enc;       // [rows, 2h] BiLSTM encoder output (kept for the cross layers)
  float* self_buf;  // [rows, 2h] working copy for the self-attention stack
  float* mid1;      // [rows, h]
  float* gates2;    // [rows, 4h]
  float* mid_out;   // the stream's h columns of the mid-fusion input
  int64_t ld_mid;
  float* branch;  // where the self branch (or the encoder output without SCA) goes
  int64_t ld_branch;
  int64_t last_q_steps;  // rows per sequence the branch needs: steps, or 1 for a live session
};

// Encoder BiLSTM, the 2-layer mid LSTM and the self-attention stack of one stream.
void RunStream(const StreamWeights& w, const HeadConfig& cfg, const SeqInfo& seq, const StreamIo& io,
               StageScratch& s, const ExecContext& ctx);

// One cross-attention layer: audio half (queries from text, keys/values audio, updates audio) and
// text half, reading h_a/h_t (all rows) and writing out_a/out_t (q_steps rows per sequence).
struct CrossIo {
  const float* h_a;
  const float* h_t;
  float* out_a;
  int64_t ld_out_a;
  float* out_t;
  int64_t ld_out_t;
  int64_t q_steps;
};
void RunCrossLayer(const AttentionLayerWeights& audio, const AttentionLayerWeights& text, const HeadConfig& cfg,
                   const SeqInfo& seq, const CrossIo& io, StageScratch& sa, StageScratch& st, const ExecContext& ctx);

// Runs fn(0..n-1): over the thread pool on CPU, in order on CUDA (one stream).
void RunTasks(const ExecContext& ctx, int64_t n, const std::function<void(int64_t)>& fn);

}  // namespace cmer_edge
