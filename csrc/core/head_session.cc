// Session: the live protocol. Each pushed utterance is normalised and projected once (one GEMV per
// modality over the stacked input weights) into a ring of the last W projections; the residual
// branch of the newest utterance is finished at once. Then only the window's recurrent and
// attention work runs again, and only the rows the newest position needs: the final SCA layers
// compute one query row, the mid-fusion backward LSTM one step, the classifier one row.
//
// The ring holds 2W rows and every projection is written twice (slot and slot + W), so the window
// is always one contiguous run of rows [slot + W - T + 1, slot + W].
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/elementwise.h"
#include "core/head.h"
#include "core/head_stages.h"
#include "core/layer_norm.h"
#include "core/lstm.h"

namespace cmer_edge {

struct Session::Workspace {
  Workspace(const Head& head, int64_t window, Device dev) : slots(head.config()) {
    const HeadConfig& cfg = head.config();
    const int64_t h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams();
    const auto make = [&](int64_t n) { return Buffer<float>(dev, static_cast<size_t>(n)); };
    std::vector<int32_t> counts(static_cast<size_t>(window));
    std::iota(counts.begin(), counts.end(), 1);
    lengths_host = counts;
    lengths_dev = Buffer<int32_t>(dev, counts.data(), counts.size());
    for (int64_t i = 0; i < ns; ++i) {
      const int64_t dim = head.weights().streams[i].input_dim;
      x_in.push_back(dev == Device::kCuda ? make(dim) : Buffer<float>());
      xn.push_back(make(dim));
      row.push_back(make(StreamWeights::ProjectedCols(h)));
      ring.push_back(make(2 * window * StreamWeights::CachedCols(h)));
      enc.push_back(make(window * w));
      self_buf.push_back(make(window * w));
      mid1.push_back(make(window * h));
      gates2.push_back(make(window * 4 * h));
      scratch.emplace_back(dev, window, cfg);
    }
    for (auto& b : cross) b = make(window * w);
    midcat = make(window * ns * h);
    concat = make(cfg.num_branches() * w);
    gf = make(window * 4 * h);
    gb = make(4 * h);
    hmid = make(window * w);
    hidden = make(cfg.classifier_dim);
    logits = make(cfg.num_classes);
  }

  BranchSlots slots;
  std::vector<int32_t> lengths_host;  // 1..W: lengths_host[T-1] == T
  Buffer<int32_t> lengths_dev;
  std::vector<Buffer<float>> x_in, xn, row, ring, enc, self_buf, mid1, gates2;
  std::vector<StageScratch> scratch;
  Buffer<float> cross[4];  // audio/text ping and pong
  Buffer<float> midcat, concat, gf, gb, hmid, hidden, logits;
};

Session::Session(const Head& head, int64_t window_utts) : head_(head), window_(window_utts) {
  if (window_utts < 1) {
    throw std::invalid_argument("window_utts must be >= 1, got " + std::to_string(window_utts));
  }
  const Device dev = head.options().device;
  if (dev == Device::kCuda) stream_ = CreateStream();
  try {
    ws_ = std::make_unique<Workspace>(head, window_utts, dev);
  } catch (...) {
    DestroyStream(stream_);
    throw;
  }
}

Session::~Session() {
  ws_.reset();
  DestroyStream(stream_);
}

void Session::ProjectUtterance(int64_t i, const float* x, int64_t slot) {
  const HeadConfig& cfg = head_.config();
  const StreamWeights& s = head_.weights().streams[i];
  const ExecContext ctx = head_.Context(stream_);
  const int64_t h = cfg.hidden, w = cfg.width(), cols = StreamWeights::ProjectedCols(h);
  float* row = ws_->row[i].data();
  if (x != nullptr) {
    if (ctx.device == Device::kCuda) {
      ws_->x_in[i].CopyFromHost(x, static_cast<size_t>(s.input_dim), 0, stream_);
      x = ws_->x_in[i].data();
    }
    NormaliseRows({x, s.input_dim, s.mean.data(), s.inv_std.data(), nullptr, 0, ws_->xn[i].data(), s.input_dim}, 1,
                  s.input_dim, ctx);
    s.input.Apply(ws_->xn[i].data(), 1, s.input_dim, row, cols, Activation::kNone, ctx);
  } else {  // missing modality: zeros after normalisation, so the projection is its bias
    CopyOnDevice(ctx.device, row, s.input.bias(), static_cast<size_t>(cols) * sizeof(float), stream_);
  }
  const int64_t cached = StreamWeights::CachedCols(h);
  float* ring = ws_->ring[i].data();
  CopyRows(ring + slot * cached, cached, row, cols, 1, cached, ctx);
  CopyRows(ring + (slot + window_) * cached, cached, row, cols, 1, cached, ctx);
  AddLayerNorm({row + StreamWeights::ResidualCol(h), cols, nullptr, 0,
                ws_->concat.data() + ws_->slots.residual[i] * w, w},
               s.residual_norm.gamma.data(), s.residual_norm.beta.data(), 1, w, kLayerNormEps, ctx);
}

void Session::Push(const float* x_a, const float* x_t, float* probs, float* logits) {
  const HeadConfig& cfg = head_.config();
  const HeadWeights& weights = head_.weights();
  const ExecContext ctx = head_.Context(stream_);
  const int64_t h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams(), ld_cat = cfg.num_branches() * w;
  const int64_t steps = std::min(pushed_ + 1, window_);
  const int64_t slot = pushed_ % window_;
  const float* inputs[2] = {cfg.uses_audio() ? x_a : x_t, x_t};
  for (int64_t i = 0; i < ns; ++i) ProjectUtterance(i, inputs[i], slot);

  const int64_t cached = StreamWeights::CachedCols(h);
  const int64_t first_row = slot + window_ - steps + 1;
  const SeqInfo seq{1, steps, &ws_->lengths_host[steps - 1], ws_->lengths_dev.data() + (steps - 1)};
  RunTasks(ctx, ns, [&](int64_t i) {
    const StreamIo io{ws_->ring[i].data() + first_row * cached, cached, ws_->enc[i].data(),
                      ws_->self_buf[i].data(), ws_->mid1[i].data(), ws_->gates2[i].data(),
                      ws_->midcat.data() + i * h, ns * h, ws_->concat.data() + ws_->slots.self[i] * w, ld_cat, 1};
    RunStream(weights.streams[i], cfg, seq, io, ws_->scratch[i], ctx);
  });
  if (cfg.has_cross()) {
    const float* ha = ws_->enc[0].data();
    const float* ht = ws_->enc[1].data();
    for (size_t l = 0; l < weights.cross_audio.size(); ++l) {
      const bool last = l + 1 == weights.cross_audio.size();
      float* oa = last ? ws_->concat.data() + ws_->slots.cross_a * w : ws_->cross[2 * (l % 2)].data();
      float* ot = last ? ws_->concat.data() + ws_->slots.cross_t * w : ws_->cross[2 * (l % 2) + 1].data();
      const CrossIo io{ha, ht, oa, w, ot, w, last ? 1 : steps};
      RunCrossLayer(weights.cross_audio[l], weights.cross_text[l], cfg, seq, io, ws_->scratch[0], ws_->scratch[1],
                    ctx);
      ha = oa;
      ht = ot;
    }
  }
  RunFusionAndClassifier(steps, ctx);

  std::vector<float> out(static_cast<size_t>(cfg.num_classes));
  ws_->logits.CopyToHost(out.data(), out.size(), 0, stream_);
  ++pushed_;
  const float mx = *std::max_element(out.begin(), out.end());
  float sum = 0.f;
  for (size_t c = 0; c < out.size(); ++c) {
    probs[c] = std::exp(out[c] - mx);
    sum += probs[c];
  }
  for (size_t c = 0; c < out.size(); ++c) probs[c] /= sum;
  if (logits != nullptr) std::copy(out.begin(), out.end(), logits);
}

// Mid fusion over the window: the forward LSTM over every row; the backward LSTM's output at the
// newest row is its first step (zero state, that row's input). Then the mid FFN and the classifier
// on the newest row only.
void Session::RunFusionAndClassifier(int64_t steps, const ExecContext& ctx) {
  const HeadConfig& cfg = head_.config();
  const HeadWeights& weights = head_.weights();
  const int64_t h = cfg.hidden, w = cfg.width(), in = cfg.num_streams() * h;
  const int64_t last = steps - 1;
  weights.fusion_fwd_input.Apply(ws_->midcat.data(), steps, in, ws_->gf.data(), 4 * h, Activation::kNone, ctx);
  weights.fusion_bwd_input.Apply(ws_->midcat.data() + last * in, 1, in, ws_->gb.data(), 4 * h, Activation::kNone,
                                 ctx);
  const LstmSequences window_seq{1, steps, &ws_->lengths_host[steps - 1], ws_->lengths_dev.data() + last};
  const LstmDirection fwd{&weights.fusion_fwd, ws_->gf.data(), 4 * h, ws_->hmid.data(), w, false};
  LstmRecurrence(window_seq, &fwd, 1, ctx);
  const LstmSequences one_step{1, 1, &ws_->lengths_host[0], ws_->lengths_dev.data()};
  const LstmDirection bwd{&weights.fusion_bwd, ws_->gb.data(), 4 * h, ws_->hmid.data() + last * w + h, w, true};
  LstmRecurrence(one_step, &bwd, 1, ctx);
  float* concat = ws_->concat.data();
  weights.mid_ffn.Apply(ws_->hmid.data() + last * w, 1, w, concat + ws_->slots.mid * w, w, Activation::kRelu, ctx);
  weights.classifier1.Apply(concat, 1, cfg.num_branches() * w, ws_->hidden.data(), cfg.classifier_dim,
                            Activation::kRelu, ctx);
  weights.classifier2.Apply(ws_->hidden.data(), 1, cfg.classifier_dim, ws_->logits.data(), cfg.num_classes,
                            Activation::kNone, ctx);
}

}  // namespace cmer_edge
