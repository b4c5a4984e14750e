"""`torch-cached`: the live session written in PyTorch with the native session's algorithm, the fair
baseline for `bench head` (issue 15). Per utterance the input projections (the LSTM inputs W_ih·x + b
of the encoder's two directions and the mid LSTM's first layer, and the residual branch's Linear) are
computed once, as one matrix-vector product per modality over the stacked weights, and kept in a
window of W rows; a push then reruns only the window's recurrent and attention work, and only the rows
the newest prediction needs (the last SCA layers on one query row, the mid-fusion backward LSTM one
step, the classifier one row). Its outputs equal CMRoberta on the same window
(tests/test_bench_head.py).

The LSTM step loops are TorchScript functions (a Python loop of small ops costs far more than the
work here); everything else is eager PyTorch. On CUDA the steady-state push (full window) can be
captured as one CUDA graph (`capture_graph`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn


def _lstm_eager(gates_x: torch.Tensor, w_hh_t: torch.Tensor, reverse: bool) -> torch.Tensor:
    """gates_x [T, 4H] (input projection incl. both biases), w_hh_t [H, 4H] -> h [T, H] (PyTorch gate
    order i, f, g, o; zero initial state; reverse runs T-1 .. 0)."""
    steps, hidden = gates_x.shape[0], w_hh_t.shape[0]
    h = gates_x.new_zeros(1, hidden)
    c = gates_x.new_zeros(1, hidden)
    out = gates_x.new_empty(steps, hidden)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        g = torch.addmm(gates_x[t:t + 1], h, w_hh_t)
        i, f, gg, o = g.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        out[t] = h[0]
    return out


with warnings.catch_warnings():  # torch 2.13 marks torch.jit.script deprecated; it is still the fastest here
    warnings.simplefilter("ignore", DeprecationWarning)
    _lstm = torch.jit.script(_lstm_eager)


def _lstm_parts(lstm: nn.LSTM, layer: int, reverse: bool = False):
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(lstm, "weight_ih" + sfx), getattr(lstm, "weight_hh" + sfx)
    bias = getattr(lstm, "bias_ih" + sfx) + getattr(lstm, "bias_hh" + sfx)
    return w_ih.detach(), w_hh.detach().t().contiguous(), bias.detach()


def _attention(att, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """MultiHeadAttention over one unpadded window: query [q, w], memory [T, w] -> [q, w]."""
    heads = att.num_heads
    nq, w = query.shape
    d = w // heads
    q = att.q_proj(query).view(nq, heads, d).transpose(0, 1)
    k = att.k_proj(memory).view(-1, heads, d).transpose(0, 1)
    v = att.v_proj(memory).view(-1, heads, d).transpose(0, 1)
    ctx = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) @ v
    return att.out_proj(ctx.transpose(0, 1).reshape(nq, w))


class TorchCachedSession:
    """A live session over `model` (CMRoberta in eval mode, on `device`) with the projection cache."""

    def __init__(self, model, window_utts: int, device: str = "cpu") -> None:
        self.model, self.cfg, self.window = model, model.cfg, int(window_utts)
        h = self.cfg.hidden
        self.streams = []
        for name, s in model.streams():
            enc, mid = s.encoder.lstm, s.mid.lstm
            parts = [_lstm_parts(enc, 0), _lstm_parts(enc, 0, True), _lstm_parts(mid, 0)]
            w_in = torch.cat([p[0] for p in parts] + [s.residual.proj.weight.detach()])
            b_in = torch.cat([p[2] for p in parts] + [s.residual.proj.bias.detach()])
            self.streams.append(dict(
                name=name, stream=s, w_in=w_in, b_in=b_in, mean=s.mean, inv_std=s.inv_std,
                enc_fwd=parts[0][1], enc_bwd=parts[1][1], mid1=parts[2][1], mid2=_lstm_parts(mid, 1),
                x=torch.zeros(s.mean.shape[0], device=device),
                rows=torch.zeros(self.window, 12 * h, device=device)))
        fusion = model.mid_fusion.lstm
        self.fusion_fwd, self.fusion_bwd = _lstm_parts(fusion, 0), _lstm_parts(fusion, 0, True)
        self.pushed = 0
        self.logits = None
        self._graph = None

    # -- one push ----------------------------------------------------------------------------------
    def push(self, x_a, x_t) -> torch.Tensor:
        """x_a [Da], x_t [Dt] (numpy or tensors; None = modality missing) -> probs [C] (a tensor on the
        session's device; on CUDA the caller synchronises)."""
        present = []
        for st, x in zip(self.streams, (x_a, x_t) if len(self.streams) == 2 else self._single(x_a, x_t)):
            if x is not None:
                st["x"].copy_(torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x)
            present.append(x is not None)
        steps, slide = min(self.pushed + 1, self.window), self.pushed >= self.window
        with torch.inference_mode():
            if self._graph is not None and slide and all(present):
                self._graph.replay()
            else:
                self.logits = self._step(steps, slide, present)
        self.pushed += 1
        return torch.softmax(self.logits, -1)

    def _single(self, x_a, x_t):
        return (x_a,) if self.cfg.uses_audio else (x_t,)

    def _step(self, steps: int, slide: bool, present: list[bool]) -> torch.Tensor:
        cfg, h = self.cfg, self.cfg.hidden
        residual, enc, mid = [], [], []
        for st, here in zip(self.streams, present):
            xn = (st["x"] - st["mean"]) * st["inv_std"] if here else torch.zeros_like(st["x"])
            proj = torch.addmv(st["b_in"], st["w_in"], xn)
            rows = st["rows"]
            if slide:
                rows[:-1] = rows[1:].clone()
            rows[steps - 1] = proj[:12 * h]
            residual.append(st["stream"].residual.norm(proj[12 * h:]))
            win = rows[:steps]
            enc.append(torch.cat([_lstm(win[:, :4 * h], st["enc_fwd"], False),
                                  _lstm(win[:, 4 * h:8 * h], st["enc_bwd"], True)], 1))
            out1 = _lstm(win[:, 8 * h:], st["mid1"], False)
            w_ih2, w_hh2_t, b2 = st["mid2"]
            mid.append(_lstm(torch.addmm(b2, out1, w_ih2.t()), w_hh2_t, False))
        branches = []
        if self.model.cross_layers:
            h_a, h_t = enc
            n = len(self.model.cross_layers)
            for l, layer in enumerate(self.model.cross_layers):
                q_a, q_t = (h_a[-1:], h_t[-1:]) if l == n - 1 else (h_a, h_t)
                new_a = layer.audio(q_a, _attention(layer.audio.attention, q_t, h_a))
                new_t = layer.text(q_t, _attention(layer.text.attention, q_a, h_t))
                h_a, h_t = new_a, new_t
            branches += [h_a[-1], h_t[-1]]
        for (st, e) in zip(self.streams, enc):
            layers = st["stream"].self_layers
            x = e
            for l, layer in enumerate(layers):
                q = x[-1:] if l == len(layers) - 1 else x
                x = layer.layer(q, _attention(layer.layer.attention, q, x))
            branches.append(x[-1])
        midcat = torch.cat(mid, 1)
        w_f, whh_f, b_f = self.fusion_fwd
        fwd = _lstm(torch.addmm(b_f, midcat, w_f.t()), whh_f, False)[-1]
        w_b, whh_b, b_b = self.fusion_bwd
        bwd = _lstm(torch.addmm(b_b, midcat[-1:], w_b.t()), whh_b, True)[-1]
        branches.append(torch.relu(self.model.mid_ffn(torch.cat([fwd, bwd]))))
        branches += residual
        return self.model.classifier(torch.cat(branches))

    # -- CUDA graphs -------------------------------------------------------------------------------
    def capture_graph(self) -> None:
        """Record the steady-state push (full, sliding window, every modality present) as one CUDA
        graph; later such pushes replay it (inputs go through the static input tensors)."""
        if self.pushed < self.window:
            raise RuntimeError("capture_graph needs a full window: push window_utts utterances first")
        present = [True] * len(self.streams)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        saved = [st["rows"].clone() for st in self.streams]
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(2):  # warm-up on a side stream, as torch.cuda.graphs asks
                self._step(self.window, True, present)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            self.logits = self._step(self.window, True, present)
        for st, rows in zip(self.streams, saved):  # warm-up and capture slid the window: undo
            st["rows"].copy_(rows)
        self._graph = graph
