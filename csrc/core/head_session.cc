// Session: the live protocol. Each pushed utterance is normalised and projected once (one GEMV per
// modality over the stacked input weights) into a window of the last W projections; the residual
// branch of the newest utterance is finished at once. Then only the window's recurrent and
// attention work runs again, and only the rows the newest position needs: the final SCA layers
// compute one query row, the mid-fusion backward LSTM one step, the classifier one row.
//
// The window buffer keeps the cached projections in order at rows 0..T-1; once it is full a push
// slides it up one row (a copy of (W-1) x 12h floats, microseconds) before writing the newest row.
// Every pointer a push uses is then fixed for a given T, which is what lets a CUDA session record
// a push once as a graph and replay it.
//
// A push runs in three phases: project the new utterance into staging rows (the window untouched);
// commit (keep a copy of the row the window is about to lose, slide, write the new row); score. An
// exception in the last two phases restores the window from that copy before it propagates, so a
// failed push leaves the session as it was. ReplaceLast is a commit without the slide, at the newest
// row, followed by the same scoring: the window then holds exactly what a push of the final inputs
// would have left, and every later push sees no difference.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
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
      rows.push_back(make(window * StreamWeights::CachedCols(h)));
      slide_tmp.push_back(dev == Device::kCuda ? make(window * StreamWeights::CachedCols(h)) : Buffer<float>());
      backup.push_back(make(StreamWeights::CachedCols(h)));
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
    logits_host.resize(static_cast<size_t>(cfg.num_classes));
  }

  BranchSlots slots;
  std::vector<int32_t> lengths_host;  // 1..W: lengths_host[T-1] == T
  Buffer<int32_t> lengths_dev;
  // row: the new utterance's projection (staging); rows: the window; backup: the row a commit
  // overwrites or drops, for the rollback.
  std::vector<Buffer<float>> x_in, xn, row, rows, slide_tmp, backup, enc, self_buf, mid1, gates2;
  std::vector<StageScratch> scratch;
  Buffer<float> cross[4];  // audio/text ping and pong
  Buffer<float> midcat, concat, gf, gb, hmid, hidden, logits;
  std::vector<float> logits_host;
};

// Page-locked staging for graph-captured copies: inputs per stream, and the logits.
struct Session::Pinned {
  Pinned(const Head& head) {
    for (const StreamWeights& s : head.weights().streams) {
      inputs.push_back(static_cast<float*>(HostAllocPinned(static_cast<size_t>(s.input_dim) * sizeof(float))));
    }
    logits = static_cast<float*>(HostAllocPinned(static_cast<size_t>(head.config().num_classes) * sizeof(float)));
  }
  ~Pinned() {
    for (float* p : inputs) HostFreePinned(p);
    HostFreePinned(logits);
  }
  std::vector<float*> inputs;
  float* logits = nullptr;
};

Session::Session(const Head& head, int64_t window_utts, bool cuda_graph)
    : head_(head), window_(window_utts), use_graphs_(cuda_graph) {
  if (window_utts < 1) {
    throw std::invalid_argument("window_utts must be >= 1, got " + std::to_string(window_utts));
  }
  const Device dev = head.options().device;
  if (cuda_graph && dev != Device::kCuda) {
    throw std::invalid_argument("cuda_graph=True needs a head on device 'cuda', this one is on 'cpu'");
  }
  if (dev == Device::kCuda) stream_ = CreateStream();
  try {
    ws_ = std::make_unique<Workspace>(head, window_utts, dev);
    if (cuda_graph) pinned_ = std::make_unique<Pinned>(head);
  } catch (...) {
    DestroyStream(stream_);
    throw;
  }
}

Session::~Session() {
  for (auto& [key, graph] : graphs_) DestroyGraph(graph);
  pinned_.reset();
  ws_.reset();
  DestroyStream(stream_);
}

void Session::MaybeFault(int stage) {
  if (fault_stage_ != stage) return;
  fault_stage_ = 0;
  throw std::runtime_error("injected fault at stage " + std::to_string(stage) + " (testing)");
}

void Session::ProjectRow(int64_t i, const float* x) {
  const StreamWeights& s = head_.weights().streams[i];
  const ExecContext ctx = head_.Context(stream_);
  const int64_t cols = StreamWeights::ProjectedCols(head_.config().hidden);
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
}

// Rows 1..W-1 to 0..W-2 (up: the slide), or back (down: undoing it).
void Session::ShiftRows(int64_t i, bool up) {
  const ExecContext ctx = head_.Context(stream_);
  const int64_t cached = StreamWeights::CachedCols(head_.config().hidden);
  float* rows = ws_->rows[i].data();
  float* dst = up ? rows : rows + cached;
  const float* src = up ? rows + cached : rows;
  if (ctx.device == Device::kCpu) {  // one contiguous block: memmove handles the overlap
    CopyOnDevice(ctx.device, dst, src, static_cast<size_t>((window_ - 1) * cached) * sizeof(float), stream_);
  } else {
    CopyRows(ws_->slide_tmp[i].data(), cached, src, cached, window_ - 1, cached, ctx);
    CopyRows(dst, cached, ws_->slide_tmp[i].data(), cached, window_ - 1, cached, ctx);
  }
}

void Session::CommitRow(int64_t i, int64_t steps, bool slide, bool replace, bool backup) {
  const HeadConfig& cfg = head_.config();
  const StreamWeights& s = head_.weights().streams[i];
  const ExecContext ctx = head_.Context(stream_);
  const int64_t h = cfg.hidden, w = cfg.width(), cols = StreamWeights::ProjectedCols(h);
  const int64_t cached = StreamWeights::CachedCols(h);
  float* rows = ws_->rows[i].data();
  if (backup && (slide || replace)) {  // the row this commit loses: the oldest, or the replaced newest
    CopyRows(ws_->backup[i].data(), cached, rows + (slide ? 0 : (steps - 1) * cached), cached, 1, cached, ctx);
  }
  if (slide) ShiftRows(i, /*up=*/true);
  const float* row = ws_->row[i].data();
  CopyRows(rows + (steps - 1) * cached, cached, row, cols, 1, cached, ctx);
  AddLayerNorm({row + StreamWeights::ResidualCol(h), cols, nullptr, 0,
                ws_->concat.data() + ws_->slots.residual[i] * w, w},
               s.residual_norm.gamma.data(), s.residual_norm.beta.data(), 1, w, kLayerNormEps, ctx);
}

void Session::Rollback(int64_t steps, bool slide, bool replace, int64_t streams) noexcept {
  if (!slide && !replace) return;  // a push into a growing window only wrote a row not yet in use
  const ExecContext ctx = head_.Context(stream_);
  const int64_t cached = StreamWeights::CachedCols(head_.config().hidden);
  try {
    for (int64_t i = 0; i < streams; ++i) {
      float* rows = ws_->rows[i].data();
      if (slide) ShiftRows(i, /*up=*/false);
      CopyRows(rows + (slide ? 0 : (steps - 1) * cached), cached, ws_->backup[i].data(), cached, 1, cached, ctx);
    }
    if (stream_ != nullptr) StreamSynchronize(stream_);
  } catch (...) {  // the device failed too: the head is disabled by the caller; nothing more to do here
  }
}

void Session::Push(const float* x_a, const float* x_t, float* probs, float* logits, bool provisional) {
  Score(x_a, x_t, Mode::kPush, probs, logits);
  ++pushed_;
  last_provisional_ = provisional;
}

void Session::ReplaceLast(const float* x_a, const float* x_t, float* probs, float* logits, bool provisional) {
  if (pushed_ == 0 || !last_provisional_) {
    throw std::logic_error(pushed_ == 0 ? "replace_last: nothing pushed yet (or the session was reset)"
                                        : "replace_last: the newest utterance was pushed as final; push it with "
                                          "provisional=True to replace it later");
  }
  Score(x_a, x_t, Mode::kReplace, probs, logits);
  last_provisional_ = provisional;
}

void Session::Score(const float* x_a, const float* x_t, Mode mode, float* probs, float* logits) {
  head_.CheckUsable();
  const HeadConfig& cfg = head_.config();
  const bool replace = mode == Mode::kReplace;
  const int64_t steps = replace ? size() : std::min(pushed_ + 1, window_);
  const bool slide = !replace && pushed_ >= window_;
  const float* inputs[2] = {cfg.uses_audio() ? x_a : x_t, x_t};
  const int64_t ns = cfg.num_streams();
  std::vector<float>& out = ws_->logits_host;  // allocated with the workspace: a push allocates nothing
  try {
    if (!use_graphs_) {
      Enqueue(inputs, steps, slide, replace, out.data(), /*rollback=*/true);
      if (stream_ != nullptr) StreamSynchronize(stream_);
    } else {
      // A replace issues the same work as a push into a window of the same length that does not
      // slide: it replays that graph.
      int64_t key = (steps - 1) * 2 + (slide ? 1 : 0);
      const float* staged[2] = {nullptr, nullptr};
      for (int64_t i = 0; i < ns; ++i) {
        key = key * 2 + (inputs[i] != nullptr ? 1 : 0);
        if (inputs[i] == nullptr) continue;
        const size_t dim = static_cast<size_t>(head_.weights().streams[i].input_dim);
        std::copy(inputs[i], inputs[i] + dim, pinned_->inputs[i]);
        staged[i] = pinned_->inputs[i];
      }
      auto it = graphs_.find(key);
      if (it == graphs_.end()) {
        BeginStreamCapture(stream_);
        try {
          Enqueue(staged, steps, slide, replace, pinned_->logits, /*rollback=*/false);
        } catch (...) {
          try {
            DestroyGraph(EndStreamCapture(stream_));  // leave capture mode; the first error is the one to report
          } catch (...) {
          }
          throw;
        }
        it = graphs_.emplace(key, EndStreamCapture(stream_)).first;
      }
      LaunchGraph(it->second, stream_);
      StreamSynchronize(stream_);
      std::copy(pinned_->logits, pinned_->logits + out.size(), out.begin());
    }
  } catch (const CudaError& e) {
    head_.Disable(e.what());
    throw CudaError(std::string("the CUDA head is now disabled after this error: ") + e.what() +
                    " (cmer_edge does not reset the device; use a CPU head, or restart the process)");
  }
  const float mx = *std::max_element(out.begin(), out.end());
  float sum = 0.f;
  for (size_t c = 0; c < out.size(); ++c) {
    probs[c] = std::exp(out[c] - mx);
    sum += probs[c];
  }
  for (size_t c = 0; c < out.size(); ++c) probs[c] /= sum;
  if (logits != nullptr) std::copy(out.begin(), out.end(), logits);
}

void Session::Enqueue(const float* const inputs[2], int64_t steps, bool slide, bool replace, float* logits_out,
                      bool rollback) {
  const int64_t ns = head_.config().num_streams();
  for (int64_t i = 0; i < ns; ++i) ProjectRow(i, inputs[i]);
  MaybeFault(1);
  int64_t committed = 0;  // streams whose commit started
  try {
    for (int64_t i = 0; i < ns; ++i) {
      committed = i + 1;
      CommitRow(i, steps, slide, replace, rollback);
    }
    MaybeFault(2);
    ScoreWindow(steps, logits_out);
    MaybeFault(3);
  } catch (...) {
    if (rollback) Rollback(steps, slide, replace, committed);
    throw;
  }
}

void Session::ScoreWindow(int64_t steps, float* logits_out) {
  const HeadConfig& cfg = head_.config();
  const HeadWeights& weights = head_.weights();
  const ExecContext ctx = head_.Context(stream_);
  const int64_t h = cfg.hidden, w = cfg.width(), ns = cfg.num_streams(), ld_cat = cfg.num_branches() * w;
  const int64_t cached = StreamWeights::CachedCols(h);
  const SeqInfo seq{1, steps, &ws_->lengths_host[steps - 1], ws_->lengths_dev.data() + (steps - 1)};
  RunTasks(ctx, ns, [&](int64_t i) {
    const StreamIo io{ws_->rows[i].data(), cached, ws_->enc[i].data(), ws_->self_buf[i].data(),
                      ws_->mid1[i].data(), ws_->gates2[i].data(), ws_->midcat.data() + i * h, ns * h,
                      ws_->concat.data() + ws_->slots.self[i] * w, ld_cat, 1};
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
  const size_t bytes = static_cast<size_t>(cfg.num_classes) * sizeof(float);
  if (ctx.device == Device::kCpu) {
    std::copy(ws_->logits.data(), ws_->logits.data() + cfg.num_classes, logits_out);
  } else {
    CopyDeviceToHostAsync(logits_out, ws_->logits.data(), bytes, stream_);
  }
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
