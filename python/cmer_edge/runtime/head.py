"""The CM-RoBERTa head on the native core (C++ on CPU, CUDA on GPU), for offline use and live sessions.

Torch-free: numpy and ``cmer_edge._native`` only, so the live runtime never imports PyTorch.

    head = NativeHead.from_bundle("bundles/edge", device="cpu", precision="fp32")
    logits = head.forward(x_a, x_t, lengths)        # [B, T, Da], [B, T, Dt], [B] -> [B, T, 7]
    live = head.session(window_utts=16)
    probs = live.push(x_a_row, x_t_row)             # [Da], [Dt] (None = modality missing) -> [7]
    first = live.push(x_a_row, None, provisional=True)   # audio now (a provisional event) ...
    final = live.replace_last(x_a_row, x_t_row)           # ... the final inputs when the text is in

An ensemble bundle (``manifest.head_members`` > 1) builds one native head per member: every push
runs on each and returns their mean probabilities (``last_logits``: the log of that mean), and the
voice pool below works on that mean; ``push_blank`` gives each member its own blank turn.

``voice_weight`` and ``text_weight`` (the bundle's ``runtime.voice_weight`` / ``runtime.text_weight``,
fitted on dev by cmer_edge.training.voice_trust; 0 = off): a push with both modalities pools the fused
head's probabilities with the same window's view of the voice alone (the utterance's words hidden) and,
with a text weight, of the words alone (its audio hidden), cmer_edge.model.voice_pool: the voice counts
as much as it sounds emotional, the words alone as much as it sounds neutral. A push with both costs
two more head steps (three with a text weight); replacing a provisional audio-only push (the
recognizer's way) costs none more (one with a text weight: the words alone), since that push is the
voice view. ``last_logits`` stay the fused head's.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge.bundle import Bundle, BundleError, load_bundle
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.model.voice_pool import pool_problem, pool_voice
from cmer_edge.runtime.blank import blank_inputs

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
        self._on = head.members  # the native heads this session runs on
        self._pushed_before = 0  # pushes a rebuilt session could not replay (older than the window)
        self._voice_view: tuple[np.ndarray, np.ndarray] | None = None  # the last provisional audio-only push
        self._natives = [_native().Session(m, int(window_utts), self._cuda_graph) for m in head.members]
        # Inputs of the window, kept where the sessions may have to be rebuilt: a CUDA error moving them
        # to the CPU head, or an ensemble member failing after another accepted the push.
        keep = head.can_fall_back or len(head.members) > 1
        self._history: deque | None = deque(maxlen=int(window_utts)) if keep else None

    @property
    def window_utts(self) -> int:
        return self._natives[0].window_utts

    @property
    def size(self) -> int:
        """Utterances in the current window (grows to window_utts)."""
        return self._natives[0].size

    @property
    def pushed(self) -> int:
        """Utterances pushed since the start or the last reset."""
        return self._pushed_before + self._natives[0].pushed

    @property
    def provisional(self) -> bool:
        """True while the newest utterance came from a provisional push (replace_last allowed)."""
        return self._natives[0].provisional

    @property
    def device(self) -> str:
        return self._head.device

    @property
    def last_logits(self) -> np.ndarray:
        """Logits of the last push (before the softmax); an ensemble's: the log of its members' mean
        probabilities."""
        if len(self._natives) == 1:
            return self._natives[0].last_logits
        return mean_probability_logits([n.last_logits for n in self._natives])

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

    def push_blank(self) -> np.ndarray:
        """An utterance with no usable modality: a blank turn in the window (cmer_edge.runtime.blank),
        each member given its own normalisation mean -> the head's probabilities for it (what the
        PyTorch reference gives for present = [0, 0]; the recognizer gives the turn no label)."""
        if self._head.blanks is None:
            raise RuntimeError("this head was built without its weights, so it has no blank turn")
        self._voice_view = None
        return self._run(False, None, None, False, blank=True)

    def reset(self) -> None:
        """Forget the conversation (a new dialogue starts)."""
        for n in self._natives:
            n.reset()
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
        """One push or replacement, with the voice pool (module doc) when the head has a pool weight
        and both modalities came in. Replacing a provisional push of the same audio alone (the
        recognizer's way) reuses that push as the voice view: one step, as without the pool (with a
        text weight, the words alone first, in its place). Otherwise the fused step first (it checks
        every input), then the voice view (and the words alone) in its place, then the fused inputs
        back with the caller's `provisional`, so the window ends exactly as after a plain push."""
        head = self._head
        voice_view, self._voice_view = (self._voice_view if replace else None), None
        pooling = bool(head.voice_weight or head.text_weight)
        if not pooling or x_a is None or x_t is None:
            probs = self._run(replace, x_a, x_t, provisional)
            if pooling and x_a is not None and x_t is None and provisional:
                self._voice_view = (np.array(x_a, np.float32), probs)  # the voice view, if the words follow
            return probs
        neutral = head.labels.index("neutral")
        if voice_view is not None and np.array_equal(voice_view[0], np.asarray(x_a, np.float32)):
            # the provisional push was the voice view (its audio checked then); the words alone in its place
            text = self._run(True, None, x_t, True) if head.text_weight else None
            fused = self._run(True, x_a, x_t, provisional)
            return pool_voice(fused, voice_view[1], head.voice_weight, neutral, text, head.text_weight)
        fused = self._run(replace, x_a, x_t, True)
        voice = self._run(True, x_a, None, True)
        text = self._run(True, None, x_t, True) if head.text_weight else None
        self._run(True, x_a, x_t, provisional)  # the same inputs again: last_logits are the fused step's
        return pool_voice(fused, voice, head.voice_weight, neutral, text, head.text_weight)

    def _run(self, replace: bool, x_a: Any, x_t: Any, provisional: bool, blank: bool = False) -> np.ndarray:
        """One push (or replacement) on every member; their mean probabilities. A CUDA error moves the
        sessions to the CPU head (when the head can fall back) and runs the step there; any other
        error in a member after an earlier one took the step rebuilds the window without it."""
        before = self.pushed
        try:
            probs = self._members_step(replace, x_a, x_t, provisional, blank, before)
        except _native().CudaError:
            if self._history is None or (self._head.members is self._on and not self._head.can_fall_back):
                raise
            self._move_to_cpu(before)
            probs = self._members_step(replace, x_a, x_t, provisional, blank, before)
        if self._history is not None:
            entry = (x_a if x_a is None else np.array(x_a, np.float32),
                     x_t if x_t is None else np.array(x_t, np.float32), provisional, blank)
            if replace:
                self._history[-1] = entry
            else:
                self._history.append(entry)
        return probs

    def _members_step(self, replace: bool, x_a: Any, x_t: Any, provisional: bool, blank: bool,
                      before: int) -> np.ndarray:
        outs = []
        for i, session in enumerate(self._natives):
            a, t = self._head.blanks[i] if blank else (x_a, x_t)
            try:
                outs.append((session.replace_last if replace else session.push)(a, t, provisional))
            except _native().CudaError:
                raise
            except Exception:
                if i > 0:  # members before it took the step: the window is rebuilt as it was
                    self._rebuild(self._on, before)
                raise
        return outs[0] if len(outs) == 1 else np.mean(outs, axis=0, dtype=np.float32)

    def _move_to_cpu(self, pushed: int) -> None:
        """The CUDA head failed: continue on the CPU head with the same window (replayed)."""
        if self._head.members is self._on:  # the first session to see the failure moves the head
            self._head.fall_back_to_cpu()
        self._rebuild(self._head.members, pushed)
        if len(self._head.members) == 1:
            self._history = None  # on the CPU head for good: nothing more to replay

    def _rebuild(self, members: tuple, pushed: int) -> None:
        """New native sessions on `members`, the window replayed from the kept inputs (`pushed`: the
        session's count before the step that failed)."""
        self._pushed_before = pushed - len(self._history)
        self._on = members
        graph = self._cuda_graph and members[0].device == "cuda"
        self._natives = [_native().Session(m, self.window_utts, graph) for m in members]
        for x_a, x_t, provisional, blank in self._history:
            for i, session in enumerate(self._natives):
                a, t = self._head.blanks[i] if blank else (x_a, x_t)
                session.push(a, t, provisional)


def mean_probability_logits(logits: Sequence[np.ndarray]) -> np.ndarray:
    """log of the mean of softmax(logits_i) over an ensemble's members (float32, the last axis)."""
    stacked = np.stack([np.asarray(z, np.float64) for z in logits])
    stacked = stacked - stacked.max(axis=-1, keepdims=True)
    log_probs = stacked - np.log(np.exp(stacked).sum(axis=-1, keepdims=True))
    top = log_probs.max(axis=0)
    return (top + np.log(np.exp(log_probs - top).mean(axis=0))).astype(np.float32)


def _describe(x: Any) -> str:
    return "None" if x is None else f"array of shape {np.shape(x)}"


class NativeHead:
    """The fused head built from trained weights; see the module docstring."""

    def __init__(self, members: Sequence[Any], config: HeadConfig, labels: tuple[str, ...] = EMOTIONS,
                 window_utts: int = DEFAULT_WINDOW_UTTS, fallback: Sequence[Mapping[str, np.ndarray]] | None = None,
                 voice_weight: float = 0.0, blanks: Sequence[tuple] | None = None, text_weight: float = 0.0) -> None:
        if len(labels) != config.num_classes:
            raise ValueError(f"{len(labels)} labels for a head with {config.num_classes} classes")
        for name, value in (("voice_weight", voice_weight), ("text_weight", text_weight)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        problem = pool_problem(float(voice_weight), config.modalities, labels, float(text_weight))
        if problem:
            raise ValueError(problem)
        self.members = tuple(members)  # the native heads; several: an ensemble, probabilities averaged
        if not self.members:
            raise ValueError("a head needs at least one native head")
        self.voice_weight = float(voice_weight)
        self.text_weight = float(text_weight)
        self.config = config
        self.labels = tuple(labels)
        self.window_utts = int(window_utts)
        # The weights, kept while this (CUDA) head may still be replaced by a CPU head ("auto").
        self._fallback = [dict(t) for t in fallback] if fallback is not None else None
        if blanks is None and fallback is not None:
            blanks = [blank_inputs(config, t) for t in fallback]
        self.blanks = tuple(blanks) if blanks is not None else None  # each member's blank turn (push_blank)
        self._fallback_threads = self.members[0].num_threads if self.members[0].device == "cpu" else 0

    @classmethod
    def from_state_dict(cls, config: HeadConfig, tensors: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                        device: str = "cpu", precision: str = "fp32", num_threads: int | None = None, *,
                        labels: tuple[str, ...] = EMOTIONS, window_utts: int = DEFAULT_WINDOW_UTTS,
                        self_check: bool = True, voice_weight: float = 0.0, text_weight: float = 0.0) -> NativeHead:
        """Build from PyTorch state-dict tensors (numpy arrays, or torch tensors) of CMRoberta(config),
        or a sequence of them (an ensemble). device "auto" picks CUDA when available; a CUDA head runs
        the start-up self-check unless self_check=False (see the module docstring)."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 0):
            raise ValueError(f"num_threads must be None or an int >= 0, got {num_threads!r}")
        members = [tensors] if isinstance(tensors, Mapping) else list(tensors)
        arrays = [{name: _as_float_array(name, value) for name, value in member.items()} for member in members]
        resolved = ("cuda" if _native().cuda_available() else "cpu") if device == "auto" else device

        def build(on: str) -> NativeHead:
            natives = [_native().Head(native_config(config), a, device=on, precision=precision,
                                      num_threads=num_threads or 0) for a in arrays]
            blanks = [blank_inputs(config, a) for a in arrays]  # the weights are checked: their means exist
            log.info("native head: %s on %s, %s input projections, %.1f MB of weights, %d threads%s",
                     config.modalities, on, precision, sum(n.weight_bytes for n in natives) / 1e6,
                     natives[0].num_threads, f", an ensemble of {len(natives)}" if len(natives) > 1 else "")
            head = cls(natives, config, labels, window_utts,
                       fallback=arrays if device == "auto" and on == "cuda" else None, voice_weight=voice_weight,
                       blanks=blanks, text_weight=text_weight)
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
        reason = next((m.disabled_reason for m in self.members if m.disabled_reason), None) or "CUDA error"
        log.warning("CUDA head disabled (%s); continuing on the CPU head", reason)
        self.members = tuple(_native().Head(native_config(self.config), weights, device="cpu",
                                            precision=self.precision, num_threads=self._fallback_threads)
                             for weights in self._fallback)
        self._fallback = None

    @classmethod
    def from_bundle(cls, bundle_or_path: Bundle | str | Path, device: str = "cpu", precision: str | None = None,
                    num_threads: int | None = None, voice_weight: float | None = None,
                    text_weight: float | None = None) -> NativeHead:
        """Build from a bundle directory (or a loaded Bundle): its head weights, labels, window, precision
        and pool weights (`precision` overrides the bundle's runtime.head_precision; `voice_weight` and
        `text_weight` its runtime.voice_weight / runtime.text_weight, both 0 turn the pool off)."""
        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
        runtime = bundle.manifest.runtime
        weight = runtime.voice_weight if voice_weight is None else voice_weight
        text = runtime.text_weight if text_weight is None else text_weight
        problem = pool_problem(float(weight), bundle.head_config.modalities, bundle.labels, float(text))
        if problem:  # an override that does not fit this bundle: bad input, named
            raise BundleError(f"{bundle.path}: {problem}")
        precision = bundle.manifest.runtime.head_precision if precision is None else precision
        return cls.from_state_dict(bundle.head_config, bundle.head_members(), device, precision, num_threads,
                                   labels=bundle.labels, window_utts=bundle.window_utts, voice_weight=weight,
                                   text_weight=text)

    @property
    def device(self) -> str:
        return self.members[0].device

    @property
    def precision(self) -> str:
        return self.members[0].precision

    @property
    def num_threads(self) -> int:
        return self.members[0].num_threads

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights as stored (every member): what one live push reads when every modality is present."""
        return sum(m.weight_bytes for m in self.members)

    def forward(self, x_a: np.ndarray | None, x_t: np.ndarray | None, lengths: np.ndarray,
                present: np.ndarray | None = None) -> np.ndarray:
        """Offline (paper protocol) logits [B, T, num_classes] for padded dialogues x_a [B, T, Da],
        x_t [B, T, Dt] with lengths [B]; present [B, T, 2] flags which modality each utterance has
        (0 = missing, zeros after normalisation). A modality the config does not use may be None."""
        logits = [m.forward(x_a, x_t, lengths, present) for m in self.members]
        return logits[0] if len(logits) == 1 else mean_probability_logits(logits)

    def session(self, window_utts: int | None = None, cuda_graph: bool = False) -> Session:
        """A live session; window_utts defaults to the bundle's (16 without a bundle). cuda_graph=True
        (CUDA heads) records each distinct push once as a CUDA graph and replays it."""
        return Session(self, self.window_utts if window_utts is None else window_utts, cuda_graph)
