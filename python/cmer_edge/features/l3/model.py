"""The L3 audio network in PyTorch: windowing -> conv-STFT log-mel -> CNN -> pooled embedding.

`L3Embedder(cfg)(audio [n] at cfg.frontend.sample_rate_hz)` returns (embedding [dim], windows
[n_windows, dim]). Every stage is a plain tensor op (gather, conv1d, matmul, log, conv2d, max-pool),
so the whole module exports to ONNX (opset 17) with a dynamic number of samples/windows and builds
as a TensorRT engine; no torch.stft, no data-dependent Python control flow.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cmer_edge.features.l3.config import FrontendConfig, L3Config, NetworkConfig
from cmer_edge.features.l3.mel import dft_kernels, mel_filterbank


class MelFrontend(nn.Module):
    """windows [W, window_samples] -> log-mel [W, 1, n_mels, n_frames] (dB re. each window's max)."""

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        real, imag = dft_kernels(cfg.n_fft)
        self.n_bins = real.shape[0]
        kernel = np.concatenate([real, imag])[:, None, :]  # [2 bins, 1, n_fft]
        self.register_buffer("dft", torch.from_numpy(kernel.astype(np.float32)), persistent=False)
        fb = mel_filterbank(cfg.sample_rate_hz, cfg.n_fft, cfg.n_mels, scale=cfg.mel_scale,
                            fmin_hz=cfg.fmin_hz, fmax_hz=cfg.fmax_hz)
        self.register_buffer("mel", torch.from_numpy(fb.astype(np.float32)), persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        left, right = cfg.pad_samples
        x = F.pad(windows[:, None, :], (left, right))
        spec = F.conv1d(x, self.dft, stride=cfg.hop_samples)  # [W, 2 bins, frames]
        re, im = spec[:, : self.n_bins], spec[:, self.n_bins:]
        power = re * re + im * im
        if cfg.mel_input == "power_sqrt":
            mel = torch.sqrt(torch.matmul(self.mel, power))
        else:
            mel = torch.matmul(self.mel, torch.sqrt(power))
        db = 10.0 * torch.log10(torch.clamp(mel, min=cfg.amin))
        db = db - torch.amax(db, dim=(1, 2), keepdim=True)
        db = torch.clamp(db, min=-cfg.dynamic_range_db)
        return db[:, None]


class L3Network(nn.Module):
    """log-mel [W, 1, n_mels, n_frames] -> embeddings [W, dim], flattened in Keras (H, W, C) order.

    Layers in Keras order: bns[0] (input), then convs[i] followed by bns[i + 1] for i < 7 (and for
    i = 7 when cfg.embedding_bn_relu); the Keras h5 converter relies on exactly this order."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [1] + [c for c in cfg.channels for _ in range(2)]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1) for i in range(8))
        n_bn = 8 if cfg.embedding_bn_relu else 7
        self.bns = nn.ModuleList([nn.BatchNorm2d(1, eps=cfg.bn_eps)]
                                 + [nn.BatchNorm2d(widths[i + 1], eps=cfg.bn_eps) for i in range(n_bn)])
        self.pool = nn.MaxPool2d(2, 2)
        self.embedding_pool = nn.MaxPool2d(cfg.embedding_pool, cfg.embedding_pool)

    def keras_order(self) -> list[nn.Module]:
        order: list[nn.Module] = [self.bns[0]]
        for i, conv in enumerate(self.convs):
            order.append(conv)
            if i + 1 < len(self.bns):
                order.append(self.bns[i + 1])
        return order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bns[0](x)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i + 1 < len(self.bns):
                x = torch.relu(self.bns[i + 1](x))
            if i in (1, 3, 5):
                x = self.pool(x)
        x = self.embedding_pool(x)
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class L3Embedder(nn.Module):
    """audio [n] at the model rate -> (embedding [dim] pooled over windows, windows [W, dim]).

    Windows as openl3.core: `center` prepends half a window of zeros, 1-s windows every `hop`
    samples, zeros at the end so every sample is covered, at least one window."""

    def __init__(self, cfg: L3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = MelFrontend(cfg.frontend)
        self.network = L3Network(cfg.network)
        self.register_buffer("offsets", torch.arange(cfg.frontend.window_samples), persistent=False)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def windows(self, audio: torch.Tensor) -> torch.Tensor:
        frame = self.cfg.frontend.window_samples
        hop = self.cfg.hop_samples
        half = frame // 2 if self.cfg.center else 0
        over = torch.sym_max(audio.shape[0] + half - frame, 0)
        count = 1 + (over + hop - 1) // hop
        padded = torch.cat([audio.new_zeros(half), audio, audio.new_zeros(frame + hop)])
        starts = torch.arange(count, device=audio.device) * hop
        return padded[starts[:, None] + self.offsets[None, :]]

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_window = self.network(self.frontend(self.windows(audio)))
        if self.cfg.pooling == "max":
            pooled = torch.amax(per_window, dim=0)
        else:
            pooled = torch.mean(per_window, dim=0)
        return pooled, per_window


def build_embedder(cfg: L3Config, *, seed: int = 0) -> L3Embedder:
    """A randomly initialised network of `cfg`'s shape (reproducible from `seed`), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = L3Embedder(cfg)
    return model.eval()
