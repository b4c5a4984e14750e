"""The CM-RoBERTa head on the native core (C++ on CPU, CUDA on GPU), for offline use and live sessions.

Torch-free: numpy and ``cmer_edge._native`` only, so the live runtime never imports PyTorch.

    head = NativeHead.from_bundle("bundles/edge", device="cpu", precision="fp32")
    logits = head.forward(x_a, x_t, lengths)        # [B, T, Da], [B, T, Dt], [B] -> [B, T, 7]
    live = head.session(window_utts=16)
    probs = live.push(x_a_row, x_t_row)             # [Da], [Dt] (None = modality missing) -> [7]

``precision`` sets the storage of the large per-utterance input projections (the LSTM inputs and
residual branches over the raw features, most of the head's bytes): "fp32", "bf16" (rounded to
nearest even) or "int8" (symmetric, one scale per output channel). Activations and every other
weight stay fp32. Build the same bundle at each precision to measure the accuracy cost.

Inputs: any real float dtype and memory order (converted to C-contiguous float32); integer,
boolean, complex or object arrays, wrong shapes and NaN/Inf raise ValueError naming the shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge.bundle import Bundle, load_bundle
from cmer_edge.model.config import EMOTIONS, HeadConfig

log = logging.getLogger("cmer_edge")

PRECISIONS = ("fp32", "bf16", "int8")
DEVICES = ("cpu", "cuda")
DEFAULT_WINDOW_UTTS = 16


def _native():
    from cmer_edge import _native as native

    return native


def _as_float_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise ValueError(f"tensor {name!r} must be a floating-point array, got dtype {array.dtype} "
                         f"with shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


class Session:
    """One live conversation: push each utterance's features, get its emotion probabilities.

    The prediction for the newest utterance uses the last ``window_utts`` utterances only (the live
    protocol, cmer_edge.model.protocol.predict_live). Each utterance's input projections are
    computed once and kept in a window buffer; a push reruns only the recurrent and attention work.
    Not thread-safe: one thread per session (sessions of one head may run in parallel).
    """

    def __init__(self, head: NativeHead, window_utts: int, cuda_graph: bool = False) -> None:
        if isinstance(window_utts, bool) or not isinstance(window_utts, (int, np.integer)) or window_utts < 1:
            raise ValueError(f"window_utts must be an int >= 1, got {window_utts!r}")
        if cuda_graph and head.device != "cuda":
            raise ValueError(f"cuda_graph=True needs a head on device 'cuda', this one is on {head.device!r}")
        self._head = head
        self._native = _native().Session(head.native, int(window_utts), bool(cuda_graph))

    @property
    def window_utts(self) -> int:
        return self._native.window_utts

    @property
    def size(self) -> int:
        """Utterances in the current window (grows to window_utts)."""
        return self._native.size

    @property
    def pushed(self) -> int:
        """Utterances pushed since the start or the last reset."""
        return self._native.pushed

    @property
    def last_logits(self) -> np.ndarray:
        """Logits of the last push (before the softmax)."""
        return self._native.last_logits

    def push(self, x_a: np.ndarray | None, x_t: np.ndarray | None) -> np.ndarray:
        """x_a [audio_dim], x_t [text_dim]; None marks a missing modality -> probs [num_classes]."""
        cfg = self._head.config
        if (x_a is None or not cfg.uses_audio) and (x_t is None or not cfg.uses_text):
            raise ValueError(f"push needs the features of at least one modality this head uses "
                             f"(modalities={cfg.modalities!r}), got x_a={_describe(x_a)}, x_t={_describe(x_t)}")
        return self._native.push(x_a, x_t)

    def reset(self) -> None:
        """Forget the conversation (a new dialogue starts)."""
        self._native.reset()


def _describe(x: Any) -> str:
    return "None" if x is None else f"array of shape {np.shape(x)}"


class NativeHead:
    """The fused head built from trained weights; see the module docstring."""

    def __init__(self, native: Any, config: HeadConfig, labels: tuple[str, ...] = EMOTIONS,
                 window_utts: int = DEFAULT_WINDOW_UTTS) -> None:
        if len(labels) != config.num_classes:
            raise ValueError(f"{len(labels)} labels for a head with {config.num_classes} classes")
        self.native = native
        self.config = config
        self.labels = tuple(labels)
        self.window_utts = int(window_utts)

    @classmethod
    def from_state_dict(cls, config: HeadConfig, tensors: Mapping[str, Any], device: str = "cpu",
                        precision: str = "fp32", num_threads: int | None = None, *,
                        labels: tuple[str, ...] = EMOTIONS,
                        window_utts: int = DEFAULT_WINDOW_UTTS) -> NativeHead:
        """Build from PyTorch state-dict tensors (numpy arrays, or torch tensors) of CMRoberta(config)."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 0):
            raise ValueError(f"num_threads must be None or an int >= 0, got {num_threads!r}")
        arrays = {name: _as_float_array(name, value) for name, value in tensors.items()}
        native = _native().Head(config.to_dict(), arrays, device=device, precision=precision,
                                num_threads=num_threads or 0)
        log.info("native head: %s on %s, %s input projections, %.1f MB of weights, %d threads",
                 config.modalities, device, precision, native.weight_bytes / 1e6, native.num_threads)
        return cls(native, config, labels, window_utts)

    @classmethod
    def from_bundle(cls, bundle_or_path: Bundle | str | Path, device: str = "cpu", precision: str = "fp32",
                    num_threads: int | None = None) -> NativeHead:
        """Build from a bundle directory (or a loaded Bundle): its head weights, labels and window."""
        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
        return cls.from_state_dict(bundle.head_config, bundle.head_tensors(), device, precision, num_threads,
                                   labels=bundle.labels, window_utts=bundle.window_utts)

    @property
    def device(self) -> str:
        return self.native.device

    @property
    def precision(self) -> str:
        return self.native.precision

    @property
    def num_threads(self) -> int:
        return self.native.num_threads

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights as stored: what one live push reads when every modality is present."""
        return self.native.weight_bytes

    def forward(self, x_a: np.ndarray | None, x_t: np.ndarray | None, lengths: np.ndarray,
                present: np.ndarray | None = None) -> np.ndarray:
        """Offline (paper protocol) logits [B, T, num_classes] for padded dialogues x_a [B, T, Da],
        x_t [B, T, Dt] with lengths [B]; present [B, T, 2] flags which modality each utterance has
        (0 = missing, zeros after normalisation). A modality the config does not use may be None."""
        return self.native.forward(x_a, x_t, lengths, present)

    def session(self, window_utts: int | None = None, cuda_graph: bool = False) -> Session:
        """A live session; window_utts defaults to the bundle's (16 without a bundle). cuda_graph=True
        (CUDA heads) records each distinct push once as a CUDA graph and replays it."""
        return Session(self, self.window_utts if window_utts is None else window_utts, cuda_graph)
