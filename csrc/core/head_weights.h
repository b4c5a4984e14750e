// The head's weights, checked against the config and prepared for one device: the big per-utterance
// input projections stacked per modality into one PackedLinear in the chosen format, everything
// else fp32. Built from PyTorch state-dict names; a missing, unexpected or mis-shaped tensor
// throws std::invalid_argument naming it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "core/head_config.h"
#include "core/lstm.h"
#include "core/packed_linear.h"

namespace cmer_edge {

constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default

struct NormWeights {
  Buffer<float> gamma;
  Buffer<float> beta;
};

// One stream's half of an SCA layer: x <- LN1(x + O(attn(Q(query), K(memory), V(memory)))),
// x <- LN2(x + FC2(relu(FC1(x)))). kv stacks K over V (one product over the memory rows).
struct AttentionLayerWeights {
  PackedLinear q, kv, out, fc1, fc2;
  NormWeights norm1, norm2;
};

struct StreamWeights {
  int64_t input_dim = 0;
  Buffer<float> mean, inv_std;
  // Rows: encoder forward gates [4h] | encoder backward gates [4h] | mid layer-1 gates [4h] |
  // residual projection [2h]; LSTM rows carry b_ih + b_hh. The only weights in input_format.
  PackedLinear input;
  LstmWeights enc_fwd, enc_bwd, mid1, mid2;
  PackedLinear mid2_input;  // mid layer-2 input projection [4h, h]
  NormWeights residual_norm;
  std::vector<AttentionLayerWeights> self_layers;

  // Column offsets inside a row of `input`'s output.
  static int64_t EncFwdCol(int64_t) { return 0; }
  static int64_t EncBwdCol(int64_t h) { return 4 * h; }
  static int64_t Mid1Col(int64_t h) { return 8 * h; }
  static int64_t ResidualCol(int64_t h) { return 12 * h; }
  static int64_t ProjectedCols(int64_t h) { return 14 * h; }
  static int64_t CachedCols(int64_t h) { return 12 * h; }  // what the live ring keeps per utterance
};

struct HeadWeights {
  std::vector<StreamWeights> streams;  // audio first, then text (those the config uses)
  std::vector<AttentionLayerWeights> cross_audio, cross_text;
  PackedLinear fusion_fwd_input, fusion_bwd_input;
  LstmWeights fusion_fwd, fusion_bwd;
  PackedLinear mid_ffn, classifier1, classifier2;
  int64_t total_bytes = 0;  // every weight, as stored
};

HeadWeights LoadHeadWeights(const HeadConfig& config, const TensorMap& tensors, Device device,
                            WeightFormat input_format);

}  // namespace cmer_edge
