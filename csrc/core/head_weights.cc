#include "core/head_weights.h"

#include <set>
#include <stdexcept>
#include <string>

namespace cmer_edge {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (i + 1 < shape.size() || shape.size() == 1) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

class Reader {
 public:
  Reader(const TensorMap& tensors, Device device) : tensors_(tensors), device_(device) {}

  const float* Get(const std::string& name, const std::vector<int64_t>& shape) {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw std::invalid_argument("head weights: missing tensor '" + name + "'");
    if (it->second.shape != shape) {
      throw std::invalid_argument("head weights: tensor '" + name + "' has shape " + ShapeText(it->second.shape) +
                                  ", expected " + ShapeText(shape));
    }
    used_.insert(name);
    return it->second.data;
  }

  Buffer<float> Vector(const std::string& name, int64_t n) {
    Buffer<float> b(device_, Get(name, {n}), static_cast<size_t>(n));
    bytes_ += static_cast<int64_t>(b.bytes());
    return b;
  }

  PackedLinear Linear(const std::string& prefix, int64_t out, int64_t in) {
    const float* w = Get(prefix + ".weight", {out, in});
    PackedLinear l(device_, WeightFormat::kF32, w, Get(prefix + ".bias", {out}), out, in);
    bytes_ += l.weight_bytes();
    return l;
  }

  LstmWeights Recurrent(const std::string& name, int64_t hidden) {
    LstmWeights w(device_, Get(name, {4 * hidden, hidden}), hidden);
    bytes_ += w.weight_bytes();
    return w;
  }

  // b_ih + b_hh of an nn.LSTM layer, appended to `bias`.
  void LstmBias(const std::string& prefix, const std::string& suffix, int64_t hidden, std::vector<float>* bias) {
    const float* bi = Get(prefix + ".bias_ih_" + suffix, {4 * hidden});
    const float* bh = Get(prefix + ".bias_hh_" + suffix, {4 * hidden});
    for (int64_t j = 0; j < 4 * hidden; ++j) bias->push_back(bi[j] + bh[j]);
  }

  NormWeights Norm(const std::string& prefix, int64_t width) {
    return NormWeights{Vector(prefix + ".weight", width), Vector(prefix + ".bias", width)};
  }

  void Add(int64_t bytes) { bytes_ += bytes; }
  int64_t bytes() const { return bytes_; }

  void CheckAllUsed() const {
    std::string extra;
    for (const auto& [name, view] : tensors_) {
      if (used_.count(name) == 0) extra += (extra.empty() ? "'" : ", '") + name + "'";
    }
    if (!extra.empty()) {
      throw std::invalid_argument("head weights: unexpected tensors for this config: " + extra);
    }
  }

  Device device() const { return device_; }

 private:
  const TensorMap& tensors_;
  Device device_;
  std::set<std::string> used_;
  int64_t bytes_ = 0;
};

AttentionLayerWeights LoadAttentionLayer(Reader& r, const std::string& prefix, const HeadConfig& cfg) {
  const int64_t w = cfg.width();
  AttentionLayerWeights a;
  const std::string att = prefix + "attention.";
  a.q = r.Linear(att + "q_proj", w, w);
  std::vector<float> kv_w, kv_b;
  for (const char* name : {"k_proj", "v_proj"}) {
    const float* wp = r.Get(att + name + ".weight", {w, w});
    const float* bp = r.Get(att + name + ".bias", {w});
    kv_w.insert(kv_w.end(), wp, wp + w * w);
    kv_b.insert(kv_b.end(), bp, bp + w);
  }
  a.kv = PackedLinear(r.device(), WeightFormat::kF32, kv_w.data(), kv_b.data(), 2 * w, w);
  r.Add(a.kv.weight_bytes());
  a.out = r.Linear(att + "out_proj", w, w);
  a.norm1 = r.Norm(prefix + "norm1", w);
  a.fc1 = r.Linear(prefix + "ffn.fc1", cfg.ffn_dim, w);
  a.fc2 = r.Linear(prefix + "ffn.fc2", w, cfg.ffn_dim);
  a.norm2 = r.Norm(prefix + "norm2", w);
  return a;
}

StreamWeights LoadStream(Reader& r, const std::string& name, int64_t dim, const HeadConfig& cfg,
                         WeightFormat input_format) {
  const int64_t h = cfg.hidden;
  StreamWeights s;
  s.input_dim = dim;
  s.mean = r.Vector(name + ".mean", dim);
  s.inv_std = r.Vector(name + ".inv_std", dim);
  const std::string enc = name + ".encoder.lstm", mid = name + ".mid.lstm", res = name + ".residual";
  std::vector<float> w, bias;
  const auto append = [&](const std::string& tensor, int64_t rows) {
    const float* p = r.Get(tensor, {rows, dim});
    w.insert(w.end(), p, p + rows * dim);
  };
  append(enc + ".weight_ih_l0", 4 * h);
  r.LstmBias(enc, "l0", h, &bias);
  append(enc + ".weight_ih_l0_reverse", 4 * h);
  r.LstmBias(enc, "l0_reverse", h, &bias);
  append(mid + ".weight_ih_l0", 4 * h);
  r.LstmBias(mid, "l0", h, &bias);
  append(res + ".proj.weight", 2 * h);
  const float* rb = r.Get(res + ".proj.bias", {2 * h});
  bias.insert(bias.end(), rb, rb + 2 * h);
  s.input = PackedLinear(r.device(), input_format, w.data(), bias.data(), 14 * h, dim);
  r.Add(s.input.weight_bytes());
  s.enc_fwd = r.Recurrent(enc + ".weight_hh_l0", h);
  s.enc_bwd = r.Recurrent(enc + ".weight_hh_l0_reverse", h);
  s.mid1 = r.Recurrent(mid + ".weight_hh_l0", h);
  s.mid2 = r.Recurrent(mid + ".weight_hh_l1", h);
  std::vector<float> b2;
  r.LstmBias(mid, "l1", h, &b2);
  s.mid2_input = PackedLinear(r.device(), WeightFormat::kF32, r.Get(mid + ".weight_ih_l1", {4 * h, h}), b2.data(),
                              4 * h, h);
  r.Add(s.mid2_input.weight_bytes());
  s.residual_norm = r.Norm(res + ".norm", 2 * h);
  for (int64_t l = 0; cfg.use_sca && l < cfg.sca_layers; ++l) {
    s.self_layers.push_back(LoadAttentionLayer(r, name + ".self_layers." + std::to_string(l) + ".layer.", cfg));
  }
  return s;
}

PackedLinear FusionInput(Reader& r, const std::string& suffix, const HeadConfig& cfg) {
  const int64_t h = cfg.hidden, in = h * cfg.num_streams();
  std::vector<float> bias;
  r.LstmBias("mid_fusion.lstm", suffix, h, &bias);
  PackedLinear l(r.device(), WeightFormat::kF32, r.Get("mid_fusion.lstm.weight_ih_" + suffix, {4 * h, in}),
                 bias.data(), 4 * h, in);
  r.Add(l.weight_bytes());
  return l;
}

}  // namespace

HeadWeights LoadHeadWeights(const HeadConfig& cfg, const TensorMap& tensors, Device device,
                            WeightFormat input_format) {
  cfg.Validate();
  Reader r(tensors, device);
  HeadWeights w;
  if (cfg.uses_audio()) w.streams.push_back(LoadStream(r, "audio", cfg.audio_dim, cfg, input_format));
  if (cfg.uses_text()) w.streams.push_back(LoadStream(r, "text", cfg.text_dim, cfg, input_format));
  for (int64_t l = 0; cfg.has_cross() && l < cfg.sca_layers; ++l) {
    const std::string prefix = "cross_layers." + std::to_string(l) + ".";
    w.cross_audio.push_back(LoadAttentionLayer(r, prefix + "audio.", cfg));
    w.cross_text.push_back(LoadAttentionLayer(r, prefix + "text.", cfg));
  }
  w.fusion_fwd_input = FusionInput(r, "l0", cfg);
  w.fusion_bwd_input = FusionInput(r, "l0_reverse", cfg);
  w.fusion_fwd = r.Recurrent("mid_fusion.lstm.weight_hh_l0", cfg.hidden);
  w.fusion_bwd = r.Recurrent("mid_fusion.lstm.weight_hh_l0_reverse", cfg.hidden);
  w.mid_ffn = r.Linear("mid_ffn", cfg.width(), cfg.width());
  w.classifier1 = r.Linear("classifier.0", cfg.classifier_dim, cfg.num_branches() * cfg.width());
  w.classifier2 = r.Linear("classifier.3", cfg.num_classes, cfg.classifier_dim);
  r.CheckAllUsed();
  w.total_bytes = r.bytes();
  return w;
}

}  // namespace cmer_edge
