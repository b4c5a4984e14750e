"""ONNX exporter of the CM-RoBERTa head (dynamic batch B and dialogue length T).

The reference module (cmer_edge.model.cm_roberta) packs padded sequences, which neither
`torch.export` nor TensorRT can follow. `ExportableHead` computes the same function from the
same parameters with export-friendly ops: every LSTM direction runs as one plain ONNX LSTM over
the padded sequence; the reverse direction of a BiLSTM reads each row reversed *within its
length* (a gather), so padding never leaks into valid positions; outputs at padded positions are
zeroed as pack/pad does. Everything else is CMRoberta's own forward (one forward for training and
export); verification compares the graph against the reference `CMRoberta` itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cmer_edge.backends.torch_models import load_head_module
from cmer_edge.bundle import Bundle
from cmer_edge.bundle.manifest import thaw
from cmer_edge.export.plan import AxisRange, ExportPlan, TensorSpec
from cmer_edge.model.cm_roberta import CMRoberta, HeadEnsemble, mean_probability_logits
from cmer_edge.model.layers import SequenceLSTM

MAX_UTTERANCES = 64  # MELD's longest dialogue has 33 utterances
MAX_BATCH = 8


def _direction(lstm: nn.LSTM, layer: int, suffix: str) -> nn.LSTM:
    """A one-layer unidirectional nn.LSTM sharing the parameters of one (layer, direction) of `lstm`."""
    single = nn.LSTM(lstm.input_size if layer == 0 else lstm.hidden_size * (2 if lstm.bidirectional else 1),
                     lstm.hidden_size, batch_first=True)
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(single, f"{kind}_l0", getattr(lstm, f"{kind}_l{layer}{suffix}"))
    return single


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, T, D] with row b's first lengths[b] steps reversed; padded steps stay in place."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    flipped = lengths[:, None] - 1 - steps
    index = torch.where(flipped >= 0, flipped, steps)
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))


class ExportableLSTM(nn.Module):
    """SequenceLSTM's function (padded outputs zero) without packing."""

    def __init__(self, ref: SequenceLSTM) -> None:
        super().__init__()
        lstm = ref.lstm
        if lstm.proj_size or not lstm.batch_first:
            raise ValueError("ExportableLSTM supports batch-first LSTMs without projections")
        self.bidirectional = lstm.bidirectional
        self.forward_layers = nn.ModuleList(_direction(lstm, i, "") for i in range(lstm.num_layers))
        self.reverse_layers = nn.ModuleList(
            _direction(lstm, i, "_reverse") for i in range(lstm.num_layers)) if lstm.bidirectional else None

    def forward(self, x: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i, fwd in enumerate(self.forward_layers):
            out = fwd(x)[0]
            if self.reverse_layers is not None:
                rev = self.reverse_layers[i](reverse_within_length(x, lengths))[0]
                out = torch.cat([out, reverse_within_length(rev, lengths)], dim=-1)
            x = out * valid
        return x


class ExportableHead(nn.Module):
    """CMRoberta's own forward with ExportableLSTM in place of the packed LSTMs (its `forward_with`
    hook). Inputs: x_a [B, T, Da] and/or x_t [B, T, Dt] (per the config's modalities), lengths [B]
    int64, present [B, T, 2]; output logits [B, T, C]."""

    def __init__(self, ref: CMRoberta) -> None:
        super().__init__()
        self.ref = ref.eval()
        self.encoders = nn.ModuleDict({name: ExportableLSTM(s.encoder) for name, s in ref.streams()})
        self.mids = nn.ModuleDict({name: ExportableLSTM(s.mid) for name, s in ref.streams()})
        self.mid_fusion = ExportableLSTM(ref.mid_fusion)
        self._exportable = {id(s.encoder): self.encoders[name] for name, s in ref.streams()}
        self._exportable.update({id(s.mid): self.mids[name] for name, s in ref.streams()})
        self._exportable[id(ref.mid_fusion)] = self.mid_fusion

    def _sequence(self, lstm: SequenceLSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None].to(x.dtype)
        return self._exportable[id(lstm)](x, valid, lengths)

    def forward(self, x_a: torch.Tensor | None = None, x_t: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.ref.forward_with(self._sequence, x_a, x_t, lengths, present)


class ExportableEnsemble(nn.Module):
    """A HeadEnsemble's function with each member as an ExportableHead: logits = log of the members'
    mean probabilities (cmer_edge.model.cm_roberta.mean_probability_logits)."""

    def __init__(self, ref: HeadEnsemble) -> None:
        super().__init__()
        self.members = nn.ModuleList(ExportableHead(m) for m in ref.members)

    def forward(self, x_a: torch.Tensor | None = None, x_t: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
        return mean_probability_logits([m(x_a, x_t, lengths, present) for m in self.members])


def _sampler(ref: CMRoberta):
    stats = {name: (s.mean.numpy().copy(), 1.0 / s.inv_std.numpy()) for name, s in ref.streams()}
    key = {"audio": "x_a", "text": "x_t"}

    def sample(sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        b, t = sizes["batch"], sizes["utterances"]
        feeds = {}
        for name, (mean, std) in stats.items():
            feeds[key[name]] = (mean + std * rng.standard_normal((b, t, mean.shape[0]))).astype(np.float32)
        lengths = rng.integers(1, t + 1, size=b).astype(np.int64)
        lengths[0] = t  # one full row, so the padded extent is real
        feeds["lengths"] = lengths
        feeds["present"] = (rng.random((b, t, 2)) > 0.15).astype(np.float32)
        return feeds

    return sample


def plan_head(bundle: Bundle) -> ExportPlan:
    """Exporter "head": inputs x_a / x_t [batch, utterances, D], lengths [batch] int64,
    present [batch, utterances, 2]; output logits [batch, utterances, classes]."""
    cfg = bundle.head_config
    ref = load_head_module(bundle)
    window = bundle.window_utts
    inputs = []
    if cfg.uses_audio:
        inputs.append(TensorSpec("x_a", "float32", ("batch", "utterances", cfg.audio_dim)))
    if cfg.uses_text:
        inputs.append(TensorSpec("x_t", "float32", ("batch", "utterances", cfg.text_dim)))
    inputs += [TensorSpec("lengths", "int64", ("batch",)),
               TensorSpec("present", "float32", ("batch", "utterances", 2))]
    axes = {"batch": AxisRange("batch", 1, 1, MAX_BATCH),
            "utterances": AxisRange("utterances", 1, min(window, MAX_UTTERANCES), MAX_UTTERANCES)}
    return ExportPlan(
        model="head", module=ExportableEnsemble(ref) if isinstance(ref, HeadEnsemble) else ExportableHead(ref),
        reference=ref,
        inputs=tuple(inputs),
        outputs=(TensorSpec("logits", "float32", ("batch", "utterances", cfg.num_classes)),),
        axes=axes, sample_inputs=_sampler(ref.members[0] if isinstance(ref, HeadEnsemble) else ref),
        check_sizes=({"batch": 1, "utterances": 1}, {"batch": 1, "utterances": min(window, MAX_UTTERANCES)},
                     {"batch": 3, "utterances": 7}, {"batch": 2, "utterances": MAX_UTTERANCES}),
        metadata={"labels": list(bundle.labels), "head": cfg.to_dict(), "head_members": bundle.manifest.head_members,
                  "window_utts": window,
                  "features": thaw(bundle.manifest.features.raw), "bundle": bundle.manifest.name,
                  "source_sha256": bundle.sha256("head")},
        atol=1e-4, rtol=1e-4)
