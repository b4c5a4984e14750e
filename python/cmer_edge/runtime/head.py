"""The CM-RoBERTa head on the native core (C++ on CPU, CUDA on GPU), for offline use and live sessions.

Torch-free: numpy and ``cmer_edge._native`` only, so the live runtime never imports PyTorch.

    head = NativeHead.from_bundle("bundles/edge", device="cpu", precision="fp32")
    logits = head.forward(x_a, x_t, lengths)        # [B, T, Da], [B, T, Dt], [B] -> [B, T, 7]
    live = head.session(window_utts=16)
    probs = live.push(x_a_row, x_t_row)             # [Da], [Dt] (None = modality missing) -> [7]
    first = live.push(x_a_row, None, provisional=True)   # audio now (a provisional event) ...
    final = live.replace_last(x_a_row, x_t_row)           # ... the final inputs when the text is in

``voice_weight`` (the bundle's ``runtime.voice_weight``, fitted on dev by
cmer_edge.training.voice_trust; 0 = off): a push with both modalities pools the fused head's
probabilities with the same window's view of the voice alone (the utterance's words hidden),
cmer_edge.model.voice_pool: the voice counts as much as it sounds emotional. A push with both costs
two more head steps; replacing a provisional audio-only push (the recognizer's way) costs none, since
that push is the voice view. ``last_logits`` stay the fused head's.

``device``: "cpu", "cuda" or "auto" (CUDA when this build and machine have it, else CPU). A CUDA
head checks itself against the CPU head at start-up (two pushes, relative logit error <=
SELF_CHECK_TOLERANCE). On a mismatch or a CUDA error there, "auto" falls back to the CPU head with a
warning naming the difference; "cuda" raises RuntimeError. A CUDA error later (the CUDA runtime
failed; cmer_edge never resets the device) disables the CUDA head: with "auto" every session moves
to a CPU head, replays its window and goes on (a warning says so); with "cuda" the push raises
cmer_edge._native.CudaError.

``precision`` sets the storage of the large per-utterance input projections (the LSTM inputs and
residual branches over the raw features, most of the head's bytes): "fp32", "bf16" (rounded to
nearest even) or "int8" (symmetric, one scale per output channel). Activations and every other
weight stay fp32. Build the same bundle at each precision to measure the accuracy cost.

Inputs: any real float dtype and memory order (converted to C-contiguous float32); integer,
boolean, complex or object arrays, wrong shapes and NaN/Inf raise ValueError naming the shape.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge.bundle import Bundle, BundleError, load_bundle
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.model.voice_pool import pool_problem, pool_voice

log = logging.getLogger("cmer_edge")

PRECISIONS = ("fp32", "bf16", "int8")
DEVICES = ("cpu", "cuda", "auto")
DEFAULT_WINDOW_UTTS = 16
# Start-up check of a CUDA head against the CPU head: max |Δlogit| / max |logit|. Ten times the
# CUDA-vs-CPU test bound (tests/test_head_cuda.py): it catches wrong kernels, not rounding.
SELF_CHECK_TOLERANCE = 1e-3


def _native():
    from cmer_edge import _native as native

    return native


def native_config(config: HeadConfig) -> Any:
    """The model's HeadConfig as the binding's _native.HeadConfig (dropout is training-only)."""
    return _native().HeadConfig(**{k: v for k, v in config.to_dict().items() if k != "dropout"})


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
    A push with ``provisional=True`` can be replaced once its final inputs are known
    (``replace_last``): the window is then exactly as if only the final inputs had been pushed.
    A push that raises leaves the window as it was. Not thread-safe: one thread per session
    (sessions of one head may run in parallel).
    """

    def __init__(self, head: NativeHead, window_utts: int, cuda_graph: bool = False) -> None:
        if isinstance(window_utts, bool) or not isinstance(window_utts, (int, np.integer)) or window_utts < 1:
            raise ValueError(f"window_utts must be an int >= 1, got {window_utts!r}")
        if cuda_graph and head.device != "cuda":
            raise ValueError(f"cuda_graph=True needs a head on device 'cuda', this one is on {head.device!r}")
        self._head = head
        self._cuda_graph = bool(cuda_graph)
        self._on = head.native  # the native head this session runs on
        self._pushed_before = 0  # pushes a CPU fallback could not replay (older than the window)
        self._voice_view: tuple[np.ndarray, np.ndarray] | None = None  # the last provisional audio-only push
        self._native = _native().Session(head.native, int(window_utts), self._cuda_graph)
        # Inputs of the window, kept only where a CUDA error may move the session to the CPU head.
        self._history: deque | None = deque(maxlen=int(window_utts)) if head.can_fall_back else None

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
        return self._pushed_before + self._native.pushed

    @property
    def provisional(self) -> bool:
        """True while the newest utterance came from a provisional push (replace_last allowed)."""
        return self._native.provisional

    @property
    def device(self) -> str:
        return self._head.device

    @property
    def last_logits(self) -> np.ndarray:
        """Logits of the last push (before the softmax)."""
        return self._native.last_logits

    def push(self, x_a: np.ndarray | None, x_t: np.ndarray | None, provisional: bool = False) -> np.ndarray:
        """x_a [audio_dim], x_t [text_dim]; None marks a missing modality -> probs [num_classes].
        provisional=True: the utterance's inputs may be replaced by ``replace_last``."""
        self._check_inputs("push", x_a, x_t)
        return self._step(False, x_a, x_t, bool(provisional))

    def replace_last(self, x_a: np.ndarray | None, x_t: np.ndarray | None,
                     provisional: bool = False) -> np.ndarray:
        """Replace the newest utterance's inputs (it must come from a provisional push, else
        RuntimeError) and re-score it -> probs [num_classes]; pushed and size stay the same.
        provisional=True keeps it replaceable."""
        self._check_inputs("replace_last", x_a, x_t)
        return self._step(True, x_a, x_t, bool(provisional))

    def reset(self) -> None:
        """Forget the conversation (a new dialogue starts)."""
        self._native.reset()
        self._pushed_before = 0
        self._voice_view = None
        if self._history is not None:
            self._history.clear()

    def _check_inputs(self, what: str, x_a: Any, x_t: Any) -> None:
        cfg = self._head.config
        if (x_a is None or not cfg.uses_audio) and (x_t is None or not cfg.uses_text):
            raise ValueError(f"{what} needs the features of at least one modality this head uses "
                             f"(modalities={cfg.modalities!r}), got x_a={_describe(x_a)}, x_t={_describe(x_t)}")

    def _step(self, replace: bool, x_a: Any, x_t: Any, provisional: bool) -> np.ndarray:
        """One push or replacement, with the voice pool (module doc) when the head has a voice weight
        and both modalities came in. Replacing a provisional push of the same audio alone (the
        recognizer's way) reuses that push as the voice view: one step, as without the pool.
        Otherwise the fused step first (it checks every input), then the voice view in its place,
        then the fused inputs back with the caller's `provisional`, so the window ends exactly as
        after a plain push."""
        head = self._head
        voice_view, self._voice_view = (self._voice_view if replace else None), None
        if head.voice_weight == 0.0 or x_a is None or x_t is None:
            probs = self._run(replace, x_a, x_t, provisional)
            if head.voice_weight and x_a is not None and x_t is None and provisional:
                self._voice_view = (np.array(x_a, np.float32), probs)  # the voice view, if the words follow
            return probs
        neutral = head.labels.index("neutral")
        if voice_view is not None and np.array_equal(voice_view[0], np.asarray(x_a, np.float32)):
            return pool_voice(self._run(True, x_a, x_t, provisional), voice_view[1], head.voice_weight, neutral)
        fused = self._run(replace, x_a, x_t, True)
        voice = self._run(True, x_a, None, True)
        self._run(True, x_a, x_t, provisional)  # the same inputs again: last_logits are the fused step's
        return pool_voice(fused, voice, head.voice_weight, neutral)

    def _run(self, replace: bool, x_a: Any, x_t: Any, provisional: bool) -> np.ndarray:
        op = self._native.replace_last if replace else self._native.push
        try:
            probs = op(x_a, x_t, provisional)
        except _native().CudaError:
            if self._history is None or (self._head.native is self._on and not self._head.can_fall_back):
                raise
            self._move_to_cpu()
            probs = (self._native.replace_last if replace else self._native.push)(x_a, x_t, provisional)
        if self._history is not None:
            entry = tuple(None if x is None else np.array(x, np.float32) for x in (x_a, x_t)) + (provisional,)
            if replace:
                self._history[-1] = entry
            else:
                self._history.append(entry)
        return probs

    def _move_to_cpu(self) -> None:
        """The CUDA head failed: continue on the CPU head with the same window (replayed)."""
        if self._head.native is self._on:  # the first session to see the failure moves the head
            self._head.fall_back_to_cpu()
        self._on = self._head.native
        self._pushed_before += self._native.pushed - len(self._history)
        self._native = _native().Session(self._head.native, self.window_utts, False)
        for x_a, x_t, provisional in self._history:
            self._native.push(x_a, x_t, provisional)
        self._history = None  # on the CPU head for good: nothing more to replay


def _describe(x: Any) -> str:
    return "None" if x is None else f"array of shape {np.shape(x)}"


class NativeHead:
    """The fused head built from trained weights; see the module docstring."""

    def __init__(self, native: Any, config: HeadConfig, labels: tuple[str, ...] = EMOTIONS,
                 window_utts: int = DEFAULT_WINDOW_UTTS, fallback: Mapping[str, np.ndarray] | None = None,
                 voice_weight: float = 0.0) -> None:
        if len(labels) != config.num_classes:
            raise ValueError(f"{len(labels)} labels for a head with {config.num_classes} classes")
        if not 0.0 <= float(voice_weight) <= 1.0:
            raise ValueError(f"voice_weight must be in [0, 1], got {voice_weight!r}")
        problem = pool_problem(float(voice_weight), config.modalities, labels)
        if problem:
            raise ValueError(problem)
        self.voice_weight = float(voice_weight)
        self.native = native
        self.config = config
        self.labels = tuple(labels)
        self.window_utts = int(window_utts)
        # The weights, kept while this (CUDA) head may still be replaced by a CPU head ("auto").
        self._fallback = dict(fallback) if fallback is not None else None
        self._fallback_threads = native.num_threads if native.device == "cpu" else 0

    @classmethod
    def from_state_dict(cls, config: HeadConfig, tensors: Mapping[str, Any], device: str = "cpu",
                        precision: str = "fp32", num_threads: int | None = None, *,
                        labels: tuple[str, ...] = EMOTIONS, window_utts: int = DEFAULT_WINDOW_UTTS,
                        self_check: bool = True, voice_weight: float = 0.0) -> NativeHead:
        """Build from PyTorch state-dict tensors (numpy arrays, or torch tensors) of CMRoberta(config).
        device "auto" picks CUDA when available; a CUDA head runs the start-up self-check unless
        self_check=False (see the module docstring)."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 0):
            raise ValueError(f"num_threads must be None or an int >= 0, got {num_threads!r}")
        arrays = {name: _as_float_array(name, value) for name, value in tensors.items()}
        resolved = ("cuda" if _native().cuda_available() else "cpu") if device == "auto" else device

        def build(on: str) -> NativeHead:
            native = _native().Head(native_config(config), arrays, device=on, precision=precision,
                                    num_threads=num_threads or 0)
            log.info("native head: %s on %s, %s input projections, %.1f MB of weights, %d threads",
                     config.modalities, on, precision, native.weight_bytes / 1e6, native.num_threads)
            head = cls(native, config, labels, window_utts,
                       fallback=arrays if device == "auto" and on == "cuda" else None, voice_weight=voice_weight)
            head._fallback_threads = num_threads or 0
            return head

        if resolved == "cpu":
            return build("cpu")
        try:
            head = build("cuda")
            problem = head.self_check(build("cpu")) if self_check else None
        except _native().CudaError as exc:
            problem = f"CUDA error: {exc}"
        if problem is None:
            return head
        if device == "cuda":
            raise RuntimeError(f"the CUDA head failed its start-up check against the CPU head: {problem}")
        log.warning("CUDA head disabled, using the CPU head: it failed its start-up check against the CPU "
                    "head: %s", problem)
        return build("cpu")

    def self_check(self, reference: NativeHead, seed: int = 0) -> str | None:
        """Two pushes of random features on this head and on `reference` (the CPU head): None when
        their logits agree within SELF_CHECK_TOLERANCE, else a sentence naming the difference."""
        rng = np.random.default_rng(seed)
        ours, theirs = self.session(2), reference.session(2)
        for i in range(2):
            x_a = rng.standard_normal(self.config.audio_dim, dtype=np.float32) if self.config.uses_audio else None
            x_t = rng.standard_normal(self.config.text_dim, dtype=np.float32) if self.config.uses_text else None
            ours.push(x_a, x_t)
            theirs.push(x_a, x_t)
            got, ref = ours.last_logits, theirs.last_logits
            if not np.all(np.isfinite(got)):
                return f"push {i + 1}: non-finite logits {got.tolist()} (CPU: {ref.tolist()})"
            err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-30))
            if err > SELF_CHECK_TOLERANCE:
                return (f"push {i + 1}: max |logit difference| {np.abs(got - ref).max():.3g}, relative {err:.3g} "
                        f"> {SELF_CHECK_TOLERANCE:g} ({self.device} {got.round(4).tolist()} vs cpu "
                        f"{ref.round(4).tolist()})")
        return None

    @property
    def can_fall_back(self) -> bool:
        """True for a CUDA head built with device="auto" (until it has moved): a CUDA error then moves
        its sessions to a CPU head."""
        return self._fallback is not None

    def fall_back_to_cpu(self) -> None:
        """Replace the (failed) CUDA head by a CPU head built from the same weights; sessions call this."""
        if self._fallback is None:
            raise RuntimeError("this head has no CPU fallback (built with device='cuda', or it fell back already)")
        reason = self.native.disabled_reason or "CUDA error"
        log.warning("CUDA head disabled (%s); continuing on the CPU head", reason)
        self.native = _native().Head(native_config(self.config), self._fallback, device="cpu",
                                     precision=self.native.precision, num_threads=self._fallback_threads)
        self._fallback = None

    @classmethod
    def from_bundle(cls, bundle_or_path: Bundle | str | Path, device: str = "cpu", precision: str = "fp32",
                    num_threads: int | None = None, voice_weight: float | None = None) -> NativeHead:
        """Build from a bundle directory (or a loaded Bundle): its head weights, labels, window and voice
        weight (`voice_weight` overrides the bundle's runtime.voice_weight; 0 turns the pool off)."""
        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
        weight = bundle.manifest.runtime.voice_weight if voice_weight is None else voice_weight
        problem = pool_problem(float(weight), bundle.head_config.modalities, bundle.labels)
        if problem:  # an override that does not fit this bundle: bad input, named
            raise BundleError(f"{bundle.path}: {problem}")
        return cls.from_state_dict(bundle.head_config, bundle.head_tensors(), device, precision, num_threads,
                                   labels=bundle.labels, window_utts=bundle.window_utts, voice_weight=weight)

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
