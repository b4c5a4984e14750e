// The CM-RoBERTa head (python/cmer_edge/model/cm_roberta.py is the reference it matches) on CPU or
// CUDA, and its live Session.
//
//   Head head(config, tensors, {Device::kCpu, WeightFormat::kF32, /*num_threads=*/0});
//   head.Forward(x_a, x_t, lengths, present, batch, steps, logits);   // offline, whole dialogues
//   Session live(head, /*window_utts=*/16);
//   live.Push(x_a_row, x_t_row, probs);                                // one utterance at a time
//   live.Push(x_a_row, nullptr, probs, nullptr, /*provisional=*/true);  // audio now, the text later:
//   live.ReplaceLast(x_a_row, x_t_row, probs);                         // the final inputs replace it
//
// Thread safety: a Head's weights are immutable after construction; Forward serialises its own
// calls (one workspace). A Session is one conversation: call Push/Reset from one thread at a time;
// different Sessions of one Head may run concurrently (they share the weights and the CPU pool,
// which runs a second concurrent caller's work serially rather than blocking it).
//
// Errors: a push or forward that throws leaves the session's window as it was before the call
// (strong guarantee). A CudaError (the CUDA runtime failed: a sticky error poisons the context)
// disables the head: every later Forward/Push on it, from any session, throws CudaError naming the
// first failure. cmer_edge never calls cudaDeviceReset (other users of the context would break);
// the Python layer falls back to a CPU head instead.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/context.h"
#include "core/head_config.h"
#include "core/head_weights.h"

namespace cmer_edge {

class Head {
 public:
  Head(const HeadConfig& config, const TensorMap& tensors, const HeadOptions& options);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  const HeadConfig& config() const { return config_; }
  const HeadOptions& options() const { return options_; }
  const HeadWeights& weights() const { return weights_; }
  int num_threads() const;
  // Bytes of weights as stored (the bytes a live push reads when every modality is present).
  int64_t weight_bytes() const { return weights_.total_bytes; }
  ExecContext Context(void* stream) const { return {options_.device, pool_.get(), stream}; }

  // Host arrays: x_a [batch·steps, audio_dim] (ignored, may be null, without audio), x_t likewise,
  // lengths [batch] each in 1..steps, present [batch·steps, 2] (audio, text flags; null = all 1).
  // Writes logits [batch·steps, num_classes]; rows past a length are computed like PyTorch's.
  void Forward(const float* x_a, const float* x_t, const int32_t* lengths, const float* present, int64_t batch,
               int64_t steps, float* logits);

  // Disabled after a CudaError (see the errors note above); the reason is the first error's text.
  bool disabled() const;
  std::string disabled_reason() const;
  // Throws CudaError if disabled. Disable keeps the first reason.
  void CheckUsable() const;
  void Disable(const std::string& reason) const;

 private:
  struct ForwardWorkspace;
  void RunForward(const float* x_a, const float* x_t, const int32_t* lengths, const float* present, int64_t batch,
                  int64_t steps, float* logits);

  HeadConfig config_;
  HeadOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  void* stream_ = nullptr;
  HeadWeights weights_;
  std::mutex forward_mu_;
  std::unique_ptr<ForwardWorkspace> forward_ws_;  // grows to the largest batch·steps seen, then reused
  mutable std::mutex disabled_mu_;
  mutable std::string disabled_reason_;
};

class Session {
 public:
  // `head` must outlive the session (the Python binding keeps it alive).
  // cuda_graph (CUDA heads only): record each distinct push (window length, which modalities are
  // present, whether the window slides) once as a CUDA graph and replay it afterwards; inputs and
  // outputs then go through page-locked staging buffers.
  Session(const Head& head, int64_t window_utts, bool cuda_graph = false);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // One utterance: x_a [audio_dim], x_t [text_dim] host rows, null where the modality is missing
  // (it then enters as zeros after normalisation, exactly like PyTorch's present = 0; both null is
  // accepted and equals present = (0, 0): the utterance still takes a place in the window). Writes
  // probs [num_classes] (softmax) and, when not null, logits [num_classes]: the head run on the
  // last window_utts utterances, read at the newest one. provisional = true lets ReplaceLast
  // replace this utterance's inputs later (e.g. audio now, the transcript when ASR is done).
  void Push(const float* x_a, const float* x_t, float* probs, float* logits = nullptr, bool provisional = false);
  // Replaces the inputs of the newest utterance, which must come from a provisional push (else
  // std::logic_error): its cached projections are recomputed and the window re-scored, leaving the
  // session exactly as if these inputs had been pushed in the first place (pushed() unchanged).
  // provisional = true keeps it replaceable (a later, better transcript).
  void ReplaceLast(const float* x_a, const float* x_t, float* probs, float* logits = nullptr,
                   bool provisional = false);
  void Reset() {
    pushed_ = 0;
    last_provisional_ = false;
  }

  int64_t window_utts() const { return window_; }
  int64_t size() const { return pushed_ < window_ ? pushed_ : window_; }  // utterances in the window
  int64_t pushed() const { return pushed_; }
  bool cuda_graph() const { return use_graphs_; }
  bool last_provisional() const { return last_provisional_; }  // the newest utterance may be replaced

  // Tests only: the next Push/ReplaceLast throws std::runtime_error at `stage`: 1 while projecting
  // (the window not yet changed), 2 after the window changed, before scoring, 3 after scoring.
  void InjectFaultForTesting(int stage) { fault_stage_ = stage; }

 private:
  struct Workspace;
  struct Pinned;
  enum class Mode { kPush, kReplace };
  void Score(const float* x_a, const float* x_t, Mode mode, float* probs, float* logits);
  // Issues one push on the session's device/stream; the logits land in `logits_out` (host).
  // `rollback`: on an exception, restore the window before rethrowing (not while capturing a graph:
  // nothing has run then).
  void Enqueue(const float* const inputs[2], int64_t steps, bool slide, bool replace, float* logits_out,
               bool rollback);
  void ProjectRow(int64_t stream, const float* x);
  void CommitRow(int64_t stream, int64_t steps, bool slide, bool replace, bool backup);
  void Rollback(int64_t steps, bool slide, bool replace, int64_t streams) noexcept;
  void ScoreWindow(int64_t steps, float* logits_out);
  void ShiftRows(int64_t stream, bool up);
  void RunFusionAndClassifier(int64_t steps, const ExecContext& ctx);
  void MaybeFault(int stage);

  const Head& head_;
  int64_t window_;
  int64_t pushed_ = 0;
  bool last_provisional_ = false;
  bool use_graphs_ = false;
  int fault_stage_ = 0;
  void* stream_ = nullptr;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<Pinned> pinned_;
  std::map<int64_t, void*> graphs_;
};

}  // namespace cmer_edge
