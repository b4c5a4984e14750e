"""CM-RoBERTa head (DESIGN.md §2): the PyTorch reference every other implementation matches.

Input per dialogue of T utterances: x_a [B, T, Da], x_t [B, T, Dt], lengths [B]; optionally
`present` [B, T, 2] (1 where the audio / text of an utterance exists; a missing modality enters
as zeros after normalisation). Output: logits [B, T, num_classes].

This forward is the only one: training, evaluation, the PyTorch fallback and the ONNX export all
run it. The exporter only swaps how each `SequenceLSTM` runs (`forward_with`: a pack-free LSTM that
ONNX and TensorRT can follow, export/head.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cmer_edge.model.config import HeadConfig
from cmer_edge.model.layers import (
    CrossAttentionLayer,
    ResidualBranch,
    SelfAttentionLayer,
    SequenceLSTM,
    key_padding_mask,
)


class ModalityStream(nn.Module):
    """Everything one modality owns: normalisation, BiLSTM encoder, self-attention stack,
    its mid-level 2-layer LSTM and its residual branch."""

    def __init__(self, input_dim: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("inv_std", torch.ones(input_dim))
        self.encoder = SequenceLSTM(input_dim, cfg.hidden, bidirectional=True)
        self.self_layers = nn.ModuleList(
            SelfAttentionLayer(cfg.width, cfg.num_heads, cfg.ffn_dim, cfg.dropout)
            for _ in range(cfg.sca_layers if cfg.use_sca else 0))
        self.mid = SequenceLSTM(input_dim, cfg.hidden, layers=2)
        self.residual = ResidualBranch(input_dim, cfg.width)

    def normalise(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std * present[..., None]


class CMRoberta(nn.Module):
    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.audio = ModalityStream(cfg.audio_dim, cfg) if cfg.uses_audio else None
        self.text = ModalityStream(cfg.text_dim, cfg) if cfg.uses_text else None
        bimodal = cfg.modalities == "both"
        self.cross_layers = nn.ModuleList(
            CrossAttentionLayer(w, cfg.num_heads, cfg.ffn_dim, cfg.dropout)
            for _ in range(cfg.sca_layers if (cfg.use_sca and bimodal) else 0))
        mid_in = cfg.hidden * (2 if bimodal else 1)
        self.mid_fusion = SequenceLSTM(mid_in, cfg.hidden, bidirectional=True)
        self.mid_ffn = nn.Linear(w, w)
        self.classifier = nn.Sequential(
            nn.Linear(cfg.num_branches * w, cfg.classifier_dim), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.classifier_dim, cfg.num_classes))

    def streams(self) -> list[tuple[str, ModalityStream]]:
        return [(name, s) for name, s in (("audio", self.audio), ("text", self.text)) if s is not None]

    def set_normalisation(self, name: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        stream = getattr(self, name)
        stream.mean.copy_(mean)
        stream.inv_std.copy_(1.0 / std.clamp_min(1e-6))

    def forward(self, x_a: torch.Tensor | None = None, x_t: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
        """Keyword names as the exported graph's inputs; the modality a config does not use may be None."""
        return self.forward_with(_run_sequence, x_a, x_t, lengths, present)

    def forward_with(self, run: Callable[[SequenceLSTM, torch.Tensor, torch.Tensor], torch.Tensor],
                     x_a: torch.Tensor | None, x_t: torch.Tensor | None, lengths: torch.Tensor,
                     present: torch.Tensor | None) -> torch.Tensor:
        """The forward, with `run(lstm, x, lengths)` running each SequenceLSTM (the exporter's hook)."""
        inputs = {"audio": x_a, "text": x_t}
        first = inputs[self.streams()[0][0]]
        steps = first.shape[1]  # a traced size under export, so the utterance axis stays dynamic
        if present is None:
            present = torch.ones(lengths.shape[0], int(steps), 2, dtype=first.dtype, device=lengths.device)
        pad = key_padding_mask(lengths, steps)
        encoded, self_out, residual, mid = {}, {}, {}, []
        for name, stream in self.streams():
            x = self.input_dropout(stream.normalise(inputs[name], present[..., 0 if name == "audio" else 1]))
            h = self.dropout(run(stream.encoder, x, lengths))
            encoded[name] = h
            for layer in stream.self_layers:
                h = layer(h, pad)
            self_out[name] = h
            residual[name] = stream.residual(x)
            mid.append(run(stream.mid, x, lengths))
        branches = []
        if self.cross_layers:
            h_a, h_t = encoded["audio"], encoded["text"]
            for layer in self.cross_layers:
                h_a, h_t = layer(h_a, h_t, pad)
            branches += [h_a, h_t]
        for name, _ in self.streams():
            branches.append(self_out[name] if self.cfg.use_sca else encoded[name])
        h_mid = run(self.mid_fusion, torch.cat(mid, dim=-1), lengths)
        branches.append(torch.relu(self.mid_ffn(self.dropout(h_mid))))
        branches += [residual[name] for name, _ in self.streams()]
        return self.classifier(self.dropout(torch.cat(branches, dim=-1)))


def _run_sequence(lstm: SequenceLSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return lstm(x, lengths)


class HeadEnsemble(nn.Module):
    """Several CMRoberta heads of one config as one head: its logits are the log of the members'
    mean probabilities (so a softmax of them gives that mean). The state dict is the bundle's
    (`members.<i>.<name>`); eval, the exporter's `forward_with` and every predictor see one head."""

    def __init__(self, members: list[CMRoberta]) -> None:
        super().__init__()
        if not members or any(m.cfg != members[0].cfg for m in members):
            raise ValueError("an ensemble needs one or more heads of one config")
        self.cfg = members[0].cfg
        self.members = nn.ModuleList(members)

    def forward(self, x_a: torch.Tensor | None = None, x_t: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None, present: torch.Tensor | None = None) -> torch.Tensor:
        return mean_probability_logits([m(x_a, x_t, lengths, present) for m in self.members])

    def forward_with(self, run: Callable[[SequenceLSTM, torch.Tensor, torch.Tensor], torch.Tensor],
                     x_a: torch.Tensor | None, x_t: torch.Tensor | None, lengths: torch.Tensor,
                     present: torch.Tensor | None) -> torch.Tensor:
        return mean_probability_logits([m.forward_with(run, x_a, x_t, lengths, present) for m in self.members])


def mean_probability_logits(logits: list[torch.Tensor]) -> torch.Tensor:
    """log of the mean of softmax(logits_i) over the members (one member: its logits unchanged)."""
    if len(logits) == 1:
        return logits[0]
    stacked = torch.stack([torch.log_softmax(z, dim=-1) for z in logits])
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))
