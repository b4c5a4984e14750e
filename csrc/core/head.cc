// Head: construction and the offline Forward over whole (padded) dialogues.
//
// Forward, in CMRoberta.forward's order: per stream, normalise + project the inputs in chunks of
// rows (one PackedLinear over the stacked LSTM-input and residual weights); the residual branch's
// LayerNorm; then the streams in parallel (encoder BiLSTM, 2-layer mid LSTM, self-attention stack);
// the cross-attention layers (audio and text halves in parallel); mid fusion BiLSTM + FFN; the
// classifier. Branch outputs are written straight into their slot of the classifier input.
#include "core/head.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/elementwise.h"
#include "core/head_stages.h"
#include "core/layer_norm.h"
#include "core/lstm.h"
#include "core/thread_pool.h"

namespace cmer_edge {
namespace {

constexpr int64_t kChunkRows = 64;

Buffer<float> Make(Device device, int64_t count) { return Buffer<float>(device, static_cast<size_t>(count)); }

}  // namespace

Head::Head(const HeadConfig& config, const TensorMap& tensors, const HeadOptions& options)
    : config_(config), options_(options) {
  config_.Validate();
  if (options.device == Device::kCuda) stream_ = CreateStream();
  try {
    pool_ = std::make_unique<ThreadPool>(options.device == Device::kCpu ? options.num_threads : 1);
    weights_ = LoadHeadWeights(config_, tensors, options.device, options.input_format);
  } catch (...) {
    DestroyStream(stream_);
    throw;
  }
}

Head::~Head() { DestroyStream(stream_); }

int Head::num_threads() const { return pool_->size(); }

void Head::Forward(const float* x_a, const float* x_t, const int32_t* lengths, const float* present,
                   int64_t batch, int64_t steps, float* logits) {
  const HeadConfig& cfg = config_;
  if (batch < 1 || steps < 1) {
    throw std::invalid_argument("Head::Forward: batch and steps must be >= 1, got batch=" + std::to_string(batch) +
                                " steps=" + std::to_string(steps));
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (lengths[b] < 1 || lengths[b] > steps) {
      throw std::invalid_argument("lengths[" + std::to_string(b) + "]=" + std::to_string(lengths[b]) +
                                  " outside 1.." + std::to_string(steps));
    }
  }
  std::lock_guard<std::mutex> lock(forward_mu_);
  const Device dev = options_.device;
  const ExecContext ctx = Context(stream_);
  const bool cuda = dev == Device::kCuda;
  const int64_t n_rows = batch * steps, h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams();
  const int64_t nb = cfg.num_branches(), ld_cat = nb * w, proj_cols = StreamWeights::ProjectedCols(h);
  const BranchSlots slots(cfg);

  Buffer<int32_t> lengths_dev(dev, lengths, static_cast<size_t>(batch));
  Buffer<float> present_dev = present != nullptr ? Buffer<float>(dev, present, static_cast<size_t>(2 * n_rows))
                                                 : Buffer<float>();
  const SeqInfo seq{batch, steps, lengths, cuda ? lengths_dev.data() : nullptr};
  Buffer<float> concat = Make(dev, n_rows * ld_cat), midcat = Make(dev, n_rows * ns * h);
  std::vector<Buffer<float>> proj, enc, self_buf, mid1, gates2;
  std::vector<StageScratch> scratch;
  const float* inputs[2] = {cfg.uses_audio() ? x_a : x_t, x_t};
  const int64_t modality[2] = {cfg.uses_audio() ? 0 : 1, 1};

  int64_t max_dim = 0;
  for (const StreamWeights& s : weights_.streams) max_dim = std::max(max_dim, s.input_dim);
  Buffer<float> x_chunk = cuda ? Make(dev, kChunkRows * max_dim) : Buffer<float>();
  Buffer<float> xn_chunk = Make(dev, kChunkRows * max_dim);
  for (int64_t i = 0; i < ns; ++i) {
    const StreamWeights& s = weights_.streams[i];
    if (inputs[i] == nullptr) throw std::invalid_argument("Head::Forward: missing input for a modality the head uses");
    proj.push_back(Make(dev, n_rows * proj_cols));
    for (int64_t r0 = 0; r0 < n_rows; r0 += kChunkRows) {
      const int64_t nr = std::min(kChunkRows, n_rows - r0);
      const float* src = inputs[i] + r0 * s.input_dim;
      if (cuda) {
        x_chunk.CopyFromHost(src, static_cast<size_t>(nr * s.input_dim), 0, stream_);
        src = x_chunk.data();
      }
      const float* mask = present != nullptr ? present_dev.data() + 2 * r0 + modality[i] : nullptr;
      NormaliseRows({src, s.input_dim, s.mean.data(), s.inv_std.data(), mask, 2, xn_chunk.data(), s.input_dim}, nr,
                    s.input_dim, ctx);
      s.input.Apply(xn_chunk.data(), nr, s.input_dim, proj[i].data() + r0 * proj_cols, proj_cols, Activation::kNone,
                    ctx);
    }
    AddLayerNorm({proj[i].data() + StreamWeights::ResidualCol(h), proj_cols, nullptr, 0,
                  concat.data() + slots.residual[i] * w, ld_cat},
                 s.residual_norm.gamma.data(), s.residual_norm.beta.data(), n_rows, w, kLayerNormEps, ctx);
    enc.push_back(Make(dev, n_rows * w));
    self_buf.push_back(Make(dev, n_rows * w));
    mid1.push_back(Make(dev, n_rows * h));
    gates2.push_back(Make(dev, n_rows * 4 * h));
    scratch.emplace_back(dev, n_rows, cfg);
  }

  RunTasks(ctx, ns, [&](int64_t i) {
    const StreamIo io{proj[i].data(),     proj_cols, enc[i].data(), self_buf[i].data(),
                      mid1[i].data(),     gates2[i].data(), midcat.data() + i * h, ns * h,
                      concat.data() + slots.self[i] * w, ld_cat, steps};
    RunStream(weights_.streams[i], cfg, seq, io, scratch[i], ctx);
  });

  if (cfg.has_cross()) {
    Buffer<float> ping[2] = {Make(dev, n_rows * w), Make(dev, n_rows * w)};
    Buffer<float> pong[2] = {Make(dev, n_rows * w), Make(dev, n_rows * w)};
    const float* ha = enc[0].data();
    const float* ht = enc[1].data();
    for (size_t l = 0; l < weights_.cross_audio.size(); ++l) {
      const bool last = l + 1 == weights_.cross_audio.size();
      float* oa = last ? concat.data() + slots.cross_a * w : ping[l % 2].data();
      float* ot = last ? concat.data() + slots.cross_t * w : pong[l % 2].data();
      const CrossIo io{ha, ht, oa, last ? ld_cat : w, ot, last ? ld_cat : w, steps};
      RunCrossLayer(weights_.cross_audio[l], weights_.cross_text[l], cfg, seq, io, scratch[0], scratch[1], ctx);
      ha = oa;
      ht = ot;
    }
  }

  Buffer<float> gf = Make(dev, n_rows * 4 * h), gb = Make(dev, n_rows * 4 * h), hmid = Make(dev, n_rows * w);
  weights_.fusion_fwd_input.Apply(midcat.data(), n_rows, ns * h, gf.data(), 4 * h, Activation::kNone, ctx);
  weights_.fusion_bwd_input.Apply(midcat.data(), n_rows, ns * h, gb.data(), 4 * h, Activation::kNone, ctx);
  const LstmSequences lstm_seq{batch, steps, lengths, seq.lengths_device};
  const LstmDirection fusion[2] = {{&weights_.fusion_fwd, gf.data(), 4 * h, hmid.data(), w, false},
                                   {&weights_.fusion_bwd, gb.data(), 4 * h, hmid.data() + h, w, true}};
  LstmRecurrence(lstm_seq, fusion, 2, ctx);
  weights_.mid_ffn.Apply(hmid.data(), n_rows, w, concat.data() + slots.mid * w, ld_cat, Activation::kRelu, ctx);
  Buffer<float> hidden = Make(dev, n_rows * cfg.classifier_dim);
  Buffer<float> out = Make(dev, n_rows * cfg.num_classes);
  weights_.classifier1.Apply(concat.data(), n_rows, ld_cat, hidden.data(), cfg.classifier_dim, Activation::kRelu, ctx);
  weights_.classifier2.Apply(hidden.data(), n_rows, cfg.classifier_dim, out.data(), cfg.num_classes,
                             Activation::kNone, ctx);
  out.CopyToHost(logits, static_cast<size_t>(n_rows * cfg.num_classes), 0, stream_);
}

}  // namespace cmer_edge
