"""Run a bundle's head over dialogues: the native core (the device path) or the PyTorch reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cmer_edge.bundle import Bundle
from cmer_edge.runtime.head import NativeHead
from cmer_edge.training.dialogues import Dialogue
from cmer_edge.training.trainer import predict

Predictor = Callable[[list[Dialogue], str, int], list[np.ndarray]]  # (dialogues, protocol, window) -> probs


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def native_predictor(bundle: Bundle, precision: str | None = None, voice_weight: float | None = None,
                     text_weight: float | None = None) -> Predictor:
    """Live protocol: an utterance with no modality enters the window as a blank turn
    (cmer_edge.runtime.blank), as present = [0, 0] does in the PyTorch reference; the head's sessions
    apply the voice pool (`voice_weight`, `text_weight`, default the bundle's). The paper protocol runs the
    fused head."""
    head = NativeHead.from_bundle(bundle, precision=precision, voice_weight=voice_weight, text_weight=text_weight)
    cfg = head.config

    def run(dialogues: list[Dialogue], protocol: str, window_utts: int) -> list[np.ndarray]:
        out = []
        for d in dialogues:
            x_a = d.x_a if cfg.uses_audio else None
            x_t = d.x_t if cfg.uses_text else None
            if protocol == "paper":
                logits = head.forward(None if x_a is None else x_a[None], None if x_t is None else x_t[None],
                                      np.array([len(d.labels)], np.int32), d.present[None])[0]
                out.append(_softmax(logits))
                continue
            session = head.session(window_utts)
            rows = []
            for i in range(len(d.labels)):
                a = x_a[i] if x_a is not None and d.present[i, 0] > 0 else None
                t = x_t[i] if x_t is not None and d.present[i, 1] > 0 else None
                rows.append(session.push(a, t) if (a is not None or t is not None) else session.push_blank())
            out.append(np.stack(rows))
        return out

    return run


def torch_predictor(bundle: Bundle) -> Predictor:
    from cmer_edge.backends.torch_models import load_head_module

    model = load_head_module(bundle)
    return lambda dialogues, protocol, window: predict(model, dialogues, protocol, window)


def make_predictor(bundle: Bundle, engine: str, precision: str | None = None,
                   voice_weight: float | None = None, text_weight: float | None = None) -> Predictor:
    """`voice_weight`, `text_weight`: the native head's voice pool (None: the bundle's); the torch engine runs
    the fused head."""
    if engine == "native":
        return native_predictor(bundle, precision, voice_weight, text_weight)
    if engine == "torch":
        if precision not in (None, "fp32"):
            raise ValueError(f"the torch engine runs fp32 only, got precision={precision!r}")
        return torch_predictor(bundle)
    raise ValueError(f"engine must be 'native' or 'torch', got {engine!r}")
