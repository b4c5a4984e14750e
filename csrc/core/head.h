// The CM-RoBERTa head (python/cmer_edge/model/cm_roberta.py is the reference it matches) on CPU or
// CUDA, and its live Session.
//
//   Head head(config, tensors, {Device::kCpu, WeightFormat::kF32, /*num_threads=*/0});
//   head.Forward(x_a, x_t, lengths, present, batch, steps, logits);   // offline, whole dialogues
//   Session live(head, /*window_utts=*/16);
//   live.Push(x_a_row, x_t_row, probs);                                // one utterance at a time
//
// Thread safety: a Head's weights are immutable after construction; Forward serialises its own
// calls (one workspace). A Session is one conversation: call Push/Reset from one thread at a time;
// different Sessions of one Head may run concurrently (they share the weights and the CPU pool,
// which runs a second concurrent caller's work serially rather than blocking it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

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

 private:
  HeadConfig config_;
  HeadOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  void* stream_ = nullptr;
  HeadWeights weights_;
  std::mutex forward_mu_;
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
  // (it then enters as zeros after normalisation, like present = 0). Writes probs [num_classes]
  // (softmax) and, when not null, logits [num_classes]: the head run on the last window_utts
  // utterances, read at the newest one.
  void Push(const float* x_a, const float* x_t, float* probs, float* logits = nullptr);
  void Reset() { pushed_ = 0; }

  int64_t window_utts() const { return window_; }
  int64_t size() const { return pushed_ < window_ ? pushed_ : window_; }  // utterances in the window
  int64_t pushed() const { return pushed_; }
  bool cuda_graph() const { return use_graphs_; }

 private:
  struct Workspace;
  struct Pinned;
  // Issues one push on the session's device/stream; the logits land in `logits_out` (host).
  void Enqueue(const float* const inputs[2], int64_t steps, bool slide, float* logits_out);
  void ProjectUtterance(int64_t stream, const float* x, int64_t row);
  void RunFusionAndClassifier(int64_t steps, const ExecContext& ctx);

  const Head& head_;
  int64_t window_;
  int64_t pushed_ = 0;
  bool use_graphs_ = false;
  void* stream_ = nullptr;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<Pinned> pinned_;
  std::map<int64_t, void*> graphs_;
};

}  // namespace cmer_edge
