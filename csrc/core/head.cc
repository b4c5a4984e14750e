// Head: construction and the offline Forward over whole (padded) dialogues.
//
// Forward, in CMRoberta.forward's order: per stream, normalise + project the inputs in chunks of
// rows (one PackedLinear over the stacked LSTM-input and residual weights); the residual branch's
// LayerNorm; then the streams in parallel (encoder BiLSTM, 2-layer mid LSTM, self-attention stack);
// the cross-attention layers (audio and text halves in parallel); mid fusion BiLSTM + FFN; the
// classifier. Branch outputs are written straight into their slot of the classifier input.
//
// Temporaries live in a ForwardWorkspace owned by the head, sized for the largest batch·steps seen
// and reused: a Forward in steady state allocates nothing and synchronises once (the logits copy
// back). On CUDA everything is ordered on the head's stream; the workspace is only freed or grown
// after that final synchronisation, so no buffer is released while kernels may still use it.
#include "core/head.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/elementwise.h"
#include "core/head_stages.h"
#include "core/layer_norm.h"
#include "core/lengths.h"
#include "core/lstm.h"
#include "core/thread_pool.h"

namespace cmer_edge {
namespace {

constexpr int64_t kChunkRows = 64;

Buffer<float> Make(Device device, int64_t count) { return Buffer<float>(device, static_cast<size_t>(count)); }

}  // namespace

struct Head::ForwardWorkspace {
  ForwardWorkspace(const Head& head, int64_t batch, int64_t rows) : batch_capacity(batch), row_capacity(rows) {
    const HeadConfig& cfg = head.config();
    const Device dev = head.options().device;
    const bool cuda = dev == Device::kCuda;
    const int64_t h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams();
    int64_t max_dim = 0;
    for (const StreamWeights& s : head.weights().streams) max_dim = std::max(max_dim, s.input_dim);
    lengths_dev = Buffer<int32_t>(dev, static_cast<size_t>(batch));
    present_dev = Make(dev, 2 * rows);
    concat = Make(dev, rows * cfg.num_branches() * w);
    midcat = Make(dev, rows * ns * h);
    x_chunk = cuda ? Make(dev, kChunkRows * max_dim) : Buffer<float>();
    xn_chunk = Make(dev, kChunkRows * max_dim);
    for (int64_t i = 0; i < ns; ++i) {
      proj.push_back(Make(dev, rows * StreamWeights::ProjectedCols(h)));
      enc.push_back(Make(dev, rows * w));
      self_buf.push_back(Make(dev, rows * w));
      mid1.push_back(Make(dev, rows * h));
      gates2.push_back(Make(dev, rows * 4 * h));
      scratch.emplace_back(dev, rows, cfg);
    }
    if (cfg.has_cross()) {
      for (auto& b : cross) b = Make(dev, rows * w);
    }
    gf = Make(dev, rows * 4 * h);
    gb = Make(dev, rows * 4 * h);
    hmid = Make(dev, rows * w);
    hidden = Make(dev, rows * cfg.classifier_dim);
    out = Make(dev, rows * cfg.num_classes);
  }

  int64_t batch_capacity, row_capacity;
  Buffer<int32_t> lengths_dev;
  Buffer<float> present_dev, concat, midcat, x_chunk, xn_chunk;
  std::vector<Buffer<float>> proj, enc, self_buf, mid1, gates2;
  std::vector<StageScratch> scratch;
  Buffer<float> cross[4];  // audio ping, text ping, audio pong, text pong
  Buffer<float> gf, gb, hmid, hidden, out;
};

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

Head::~Head() {
  forward_ws_.reset();
  DestroyStream(stream_);
}

bool Head::disabled() const {
  std::lock_guard<std::mutex> lock(disabled_mu_);
  return !disabled_reason_.empty();
}

std::string Head::disabled_reason() const {
  std::lock_guard<std::mutex> lock(disabled_mu_);
  return disabled_reason_;
}

void Head::Disable(const std::string& reason) const {
  std::lock_guard<std::mutex> lock(disabled_mu_);
  if (disabled_reason_.empty()) disabled_reason_ = reason.empty() ? "unknown CUDA error" : reason;
}

void Head::CheckUsable() const {
  std::lock_guard<std::mutex> lock(disabled_mu_);
  if (!disabled_reason_.empty()) {
    throw CudaError("this CUDA head is disabled after an earlier CUDA error (" + disabled_reason_ +
                    "); build a new head on device 'cpu' (or restart the process to retry the GPU)");
  }
}

int Head::num_threads() const { return pool_->size(); }

void Head::Forward(const float* x_a, const float* x_t, const int32_t* lengths, const float* present,
                   int64_t batch, int64_t steps, float* logits) {
  if (batch < 1 || steps < 1) {
    throw std::invalid_argument("Head::Forward: batch and steps must be >= 1, got batch=" + std::to_string(batch) +
                                " steps=" + std::to_string(steps));
  }
  CheckLengths(lengths, batch, steps);
  std::lock_guard<std::mutex> lock(forward_mu_);
  CheckUsable();
  try {
    RunForward(x_a, x_t, lengths, present, batch, steps, logits);
  } catch (const CudaError& e) {
    Disable(e.what());
    throw CudaError(std::string("the CUDA head is now disabled after this error: ") + e.what() +
                    " (cmer_edge does not reset the device; use a CPU head, or restart the process)");
  }
}

void Head::RunForward(const float* x_a, const float* x_t, const int32_t* lengths, const float* present,
                      int64_t batch, int64_t steps, float* logits) {
  const HeadConfig& cfg = config_;
  const Device dev = options_.device;
  const ExecContext ctx = Context(stream_);
  const bool cuda = dev == Device::kCuda;
  const int64_t n_rows = batch * steps, h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams();
  const int64_t ld_cat = cfg.num_branches() * w, proj_cols = StreamWeights::ProjectedCols(h);
  const BranchSlots slots(cfg);
  const float* inputs[2] = {cfg.uses_audio() ? x_a : x_t, x_t};
  const int64_t modality[2] = {cfg.uses_audio() ? 0 : 1, 1};
  for (int64_t i = 0; i < ns; ++i) {
    if (inputs[i] == nullptr) throw std::invalid_argument("Head::Forward: missing input for a modality the head uses");
  }
  if (forward_ws_ == nullptr || forward_ws_->row_capacity < n_rows || forward_ws_->batch_capacity < batch) {
    const int64_t rows = forward_ws_ ? std::max(n_rows, forward_ws_->row_capacity) : n_rows;
    const int64_t b = forward_ws_ ? std::max(batch, forward_ws_->batch_capacity) : batch;
    forward_ws_.reset();  // the previous Forward ended with a synchronising copy: nothing still uses it
    forward_ws_ = std::make_unique<ForwardWorkspace>(*this, b, rows);
  }
  ForwardWorkspace& ws = *forward_ws_;
  if (cuda) {
    CopyHostToDevice(ws.lengths_dev.data(), lengths, static_cast<size_t>(batch) * sizeof(int32_t), stream_);
    if (present != nullptr) {
      CopyHostToDevice(ws.present_dev.data(), present, static_cast<size_t>(2 * n_rows) * sizeof(float), stream_);
    }
  }
  const float* present_rows = present == nullptr ? nullptr : (cuda ? ws.present_dev.data() : present);
  const SeqInfo seq{batch, steps, lengths, cuda ? ws.lengths_dev.data() : nullptr};
  float* concat = ws.concat.data();

  for (int64_t i = 0; i < ns; ++i) {
    const StreamWeights& s = weights_.streams[i];
    float* proj = ws.proj[i].data();
    for (int64_t r0 = 0; r0 < n_rows; r0 += kChunkRows) {
      const int64_t nr = std::min(kChunkRows, n_rows - r0);
      const float* src = inputs[i] + r0 * s.input_dim;
      if (cuda) {
        ws.x_chunk.CopyFromHost(src, static_cast<size_t>(nr * s.input_dim), 0, stream_);
        src = ws.x_chunk.data();
      }
      const float* mask = present_rows != nullptr ? present_rows + 2 * r0 + modality[i] : nullptr;
      NormaliseRows({src, s.input_dim, s.mean.data(), s.inv_std.data(), mask, 2, ws.xn_chunk.data(), s.input_dim},
                    nr, s.input_dim, ctx);
      s.input.Apply(ws.xn_chunk.data(), nr, s.input_dim, proj + r0 * proj_cols, proj_cols, Activation::kNone, ctx);
    }
    AddLayerNorm({proj + StreamWeights::ResidualCol(h), proj_cols, nullptr, 0, concat + slots.residual[i] * w, ld_cat},
                 s.residual_norm.gamma.data(), s.residual_norm.beta.data(), n_rows, w, kLayerNormEps, ctx);
  }

  RunTasks(ctx, ns, [&](int64_t i) {
    const StreamIo io{ws.proj[i].data(),   proj_cols,          ws.enc[i].data(), ws.self_buf[i].data(),
                      ws.mid1[i].data(),   ws.gates2[i].data(), ws.midcat.data() + i * h, ns * h,
                      concat + slots.self[i] * w, ld_cat, steps};
    RunStream(weights_.streams[i], cfg, seq, io, ws.scratch[i], ctx);
  });

  if (cfg.has_cross()) {
    const float* ha = ws.enc[0].data();
    const float* ht = ws.enc[1].data();
    for (size_t l = 0; l < weights_.cross_audio.size(); ++l) {
      const bool last = l + 1 == weights_.cross_audio.size();
      float* oa = last ? concat + slots.cross_a * w : ws.cross[2 * (l % 2)].data();
      float* ot = last ? concat + slots.cross_t * w : ws.cross[2 * (l % 2) + 1].data();
      const CrossIo io{ha, ht, oa, last ? ld_cat : w, ot, last ? ld_cat : w, steps};
      RunCrossLayer(weights_.cross_audio[l], weights_.cross_text[l], cfg, seq, io, ws.scratch[0], ws.scratch[1], ctx);
      ha = oa;
      ht = ot;
    }
  }

  weights_.fusion_fwd_input.Apply(ws.midcat.data(), n_rows, ns * h, ws.gf.data(), 4 * h, Activation::kNone, ctx);
  weights_.fusion_bwd_input.Apply(ws.midcat.data(), n_rows, ns * h, ws.gb.data(), 4 * h, Activation::kNone, ctx);
  const LstmSequences lstm_seq{batch, steps, lengths, seq.lengths_device};
  const LstmDirection fusion[2] = {{&weights_.fusion_fwd, ws.gf.data(), 4 * h, ws.hmid.data(), w, false},
                                   {&weights_.fusion_bwd, ws.gb.data(), 4 * h, ws.hmid.data() + h, w, true}};
  LstmRecurrence(lstm_seq, fusion, 2, ctx);
  weights_.mid_ffn.Apply(ws.hmid.data(), n_rows, w, concat + slots.mid * w, ld_cat, Activation::kRelu, ctx);
  weights_.classifier1.Apply(concat, n_rows, ld_cat, ws.hidden.data(), cfg.classifier_dim, Activation::kRelu, ctx);
  weights_.classifier2.Apply(ws.hidden.data(), n_rows, cfg.classifier_dim, ws.out.data(), cfg.num_classes,
                             Activation::kNone, ctx);
  ws.out.CopyToHost(logits, static_cast<size_t>(n_rows * cfg.num_classes), 0, stream_);
}

}  // namespace cmer_edge
