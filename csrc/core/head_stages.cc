#include "core/head_stages.h"

#include <stdexcept>

#include "core/attention.h"
#include "core/elementwise.h"
#include "core/layer_norm.h"
#include "core/lstm.h"
#include "core/thread_pool.h"

namespace cmer_edge {

StageScratch::StageScratch(Device device, int64_t rows, const HeadConfig& cfg) {
  const auto w = static_cast<size_t>(cfg.width()), n = static_cast<size_t>(rows);
  kv = Buffer<float>(device, 2 * w * n);
  q = Buffer<float>(device, w * n);
  ctx = Buffer<float>(device, w * n);
  x1 = Buffer<float>(device, w * n);
  ffn = Buffer<float>(device, static_cast<size_t>(cfg.ffn_dim) * n);
}

BranchSlots::BranchSlots(const HeadConfig& cfg) {
  int64_t next = 0;
  if (cfg.has_cross()) {
    cross_a = next++;
    cross_t = next++;
  }
  for (int64_t i = 0; i < cfg.num_streams(); ++i) self[i] = next++;
  mid = next++;
  for (int64_t i = 0; i < cfg.num_streams(); ++i) residual[i] = next++;
}

void RunAttentionLayer(const AttentionLayerWeights& w, const HeadConfig& cfg, const SeqInfo& seq,
                       const float* memory, int64_t ld_memory, const LayerRows& rows, StageScratch& s,
                       const ExecContext& ctx) {
  const int64_t width = cfg.width();
  const int64_t nq = seq.batch * rows.q_steps;
  w.kv.Apply(memory, seq.batch * seq.steps, ld_memory, s.kv.data(), 2 * width, Activation::kNone, ctx);
  w.q.Apply(rows.query, nq, rows.ld_query, s.q.data(), width, Activation::kNone, ctx);
  AttentionShape shape;
  shape.batch = seq.batch;
  shape.q_steps = rows.q_steps;
  shape.kv_steps = seq.steps;
  shape.width = width;
  shape.heads = cfg.num_heads;
  shape.q_offset = rows.q_offset;
  const AttentionIo io{s.q.data(), width,          s.kv.data(), 2 * width,   s.kv.data() + width,
                       2 * width,  s.ctx.data(),   width,       seq.lengths, seq.lengths_device};
  Attention(shape, io, ctx);
  w.out.Apply(s.ctx.data(), nq, width, s.x1.data(), width, Activation::kNone, ctx);
  AddLayerNorm({rows.x, rows.ldx, s.x1.data(), width, s.x1.data(), width}, w.norm1.gamma.data(),
               w.norm1.beta.data(), nq, width, kLayerNormEps, ctx);
  w.fc1.Apply(s.x1.data(), nq, width, s.ffn.data(), cfg.ffn_dim, Activation::kRelu, ctx);
  w.fc2.Apply(s.ffn.data(), nq, cfg.ffn_dim, s.ctx.data(), width, Activation::kNone, ctx);
  AddLayerNorm({s.x1.data(), width, s.ctx.data(), width, rows.out, rows.ld_out}, w.norm2.gamma.data(),
               w.norm2.beta.data(), nq, width, kLayerNormEps, ctx);
}

void RunStream(const StreamWeights& w, const HeadConfig& cfg, const SeqInfo& seq, const StreamIo& io,
               StageScratch& s, const ExecContext& ctx) {
  const int64_t h = cfg.hidden, width = cfg.width();
  const int64_t rows = seq.batch * seq.steps;
  if (seq.batch != 1 && io.last_q_steps != seq.steps) {
    throw std::logic_error("RunStream: last-rows-only mode needs batch 1");
  }
  const LstmSequences lstm_seq{seq.batch, seq.steps, seq.lengths, seq.lengths_device};
  const LstmDirection enc[2] = {
      {&w.enc_fwd, io.proj + StreamWeights::EncFwdCol(h), io.ld_proj, io.enc, width, false},
      {&w.enc_bwd, io.proj + StreamWeights::EncBwdCol(h), io.ld_proj, io.enc + h, width, true}};
  LstmRecurrence(lstm_seq, enc, 2, ctx);
  const LstmDirection mid1{&w.mid1, io.proj + StreamWeights::Mid1Col(h), io.ld_proj, io.mid1, h, false};
  LstmRecurrence(lstm_seq, &mid1, 1, ctx);
  w.mid2_input.Apply(io.mid1, rows, h, io.gates2, 4 * h, Activation::kNone, ctx);
  const LstmDirection mid2{&w.mid2, io.gates2, 4 * h, io.mid_out, io.ld_mid, false};
  LstmRecurrence(lstm_seq, &mid2, 1, ctx);

  const int64_t first = seq.steps - io.last_q_steps;  // first branch row (batch 1 when > 0)
  if (w.self_layers.empty()) {
    CopyRows(io.branch, io.ld_branch, io.enc + first * width, width, seq.batch * io.last_q_steps, width, ctx);
    return;
  }
  CopyRows(io.self_buf, width, io.enc, width, rows, width, ctx);
  const size_t n = w.self_layers.size();
  for (size_t l = 0; l < n; ++l) {
    const bool last = l + 1 == n;
    const int64_t q_steps = last ? io.last_q_steps : seq.steps;
    const int64_t q0 = last ? first : 0;
    const float* x = io.self_buf + q0 * width;
    const LayerRows lr{x, width, x, width, last ? io.branch : io.self_buf, last ? io.ld_branch : width, q_steps, q0};
    RunAttentionLayer(w.self_layers[l], cfg, seq, io.self_buf, width, lr, s, ctx);
  }
}

void RunCrossLayer(const AttentionLayerWeights& audio, const AttentionLayerWeights& text, const HeadConfig& cfg,
                   const SeqInfo& seq, const CrossIo& io, StageScratch& sa, StageScratch& st, const ExecContext& ctx) {
  const int64_t width = cfg.width();
  const int64_t q0 = seq.steps - io.q_steps;
  const float* ha = io.h_a + q0 * width;
  const float* ht = io.h_t + q0 * width;
  RunTasks(ctx, 2, [&](int64_t half) {
    if (half == 0) {  // ∇H_{t-a}: queries from text, keys/values from audio; updates H_a
      const LayerRows lr{ha, width, ht, width, io.out_a, io.ld_out_a, io.q_steps, q0};
      RunAttentionLayer(audio, cfg, seq, io.h_a, width, lr, sa, ctx);
    } else {  // ∇H_{a-t}: queries from audio, keys/values from text; updates H_t
      const LayerRows lr{ht, width, ha, width, io.out_t, io.ld_out_t, io.q_steps, q0};
      RunAttentionLayer(text, cfg, seq, io.h_t, width, lr, st, ctx);
    }
  });
}

void RunTasks(const ExecContext& ctx, int64_t n, const std::function<void(int64_t)>& fn) {
  if (ctx.device == Device::kCpu && ctx.pool != nullptr) {
    ctx.pool->ParallelFor(n, fn);
    return;
  }
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace cmer_edge
