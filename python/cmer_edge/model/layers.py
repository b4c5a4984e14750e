"""Building blocks of the head, written out so the native core can mirror each op exactly."""

from __future__ import annotations

import math

import torch
from torch import nn


def key_padding_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B] lengths -> [B, T] bool, True where a position is padding."""
    return torch.arange(steps, device=lengths.device)[None, :] >= lengths[:, None]


class SequenceLSTM(nn.Module):
    """nn.LSTM over padded batches (batch-first); padded positions come out as zeros."""

    def __init__(self, input_dim: int, hidden: int, *, layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out


class MultiHeadAttention(nn.Module):
    """softmax(Q Kᵀ / √d_head) V over the utterance axis, heads concatenated, then an output projection.

    Queries come from `query`, keys and values from `memory` (the same tensor for self-attention).
    Padded keys are masked out; padded query rows are computed but never used.
    """

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, t, w = query.shape
        d = w // self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, self.num_heads, d).transpose(1, 2)  # [B, heads, T, d]

        q, k, v = split(self.q_proj(query)), split(self.k_proj(memory)), split(self.v_proj(memory))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        context = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(context.transpose(1, 2).reshape(b, t, w))


class FeedForward(nn.Module):
    """Linear -> ReLU -> Linear."""

    def __init__(self, width: int, ffn_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class AttentionLayer(nn.Module):
    """One stream's half of an SCA layer (eq. 1-9, residual read of ⊕):
    x <- LN(x + MHA(x, memory)); x <- LN(x + FFN(x)).
    Cross-attention when `memory` is the other modality, self-attention when it is `x`.
    """

    def __init__(self, width: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(width, num_heads)
        self.norm1 = nn.LayerNorm(width)
        self.ffn = FeedForward(width, ffn_dim)
        self.norm2 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))


class CrossAttentionLayer(nn.Module):
    """∇H_{a-t} = softmax(Q_a K_tᵀ/√d) V_t, ∇H_{t-a} = softmax(Q_t K_aᵀ/√d) V_a;
    H_a <- LN(H_a + ∇H_{t-a}), H_t <- LN(H_t + ∇H_{a-t}) (DESIGN.md §2), each followed by its FFN."""

    def __init__(self, width: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.audio = AttentionLayer(width, num_heads, ffn_dim, dropout)  # owns ∇H_{t-a}, updates H_a
        self.text = AttentionLayer(width, num_heads, ffn_dim, dropout)   # owns ∇H_{a-t}, updates H_t

    def forward(self, h_a: torch.Tensor, h_t: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_ta = self.audio.attention(h_t, h_a, pad)  # queries from text, keys/values from audio
        grad_at = self.text.attention(h_a, h_t, pad)   # queries from audio, keys/values from text
        return self.audio(h_a, grad_ta), self.text(h_t, grad_at)


class SelfAttentionLayer(nn.Module):
    """H <- LN(H + softmax(Q Kᵀ/√d) V) with Q, K, V from one modality, then its FFN."""

    def __init__(self, width: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layer = AttentionLayer(width, num_heads, ffn_dim, dropout)

    def forward(self, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.layer(h, self.layer.attention(h, h, pad))


class ResidualBranch(nn.Module):
    """LN(Linear(x)): the raw utterance features, projected, bypassing the sequence model."""

    def __init__(self, input_dim: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_dim, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))
