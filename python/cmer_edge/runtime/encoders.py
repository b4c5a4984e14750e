"""The live runtime's encoders, each on the backend `backends.open_runner` chooses.

    text = open_text_encoder(bundle)            # tokenizer (torch-free) + text_encoder runner
    x_t = text("I can't believe it!")           # float32 [text_dim]
    audio = open_audio_extractor(bundle)        # features.audio rebuilt: openSMILE parts + L3 on
    x_a = audio(samples_16k)                    #   the chosen backend -> float32 [audio_dim]

Neither imports torch unless the torch backend is chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmer_edge.bundle import AudioPart, Bundle, BundleError
from cmer_edge.bundle.manifest import thaw
from cmer_edge.features.base import ChainExtractor
from cmer_edge.features.l3.config import L3Config
from cmer_edge.features.l3.runner import RunnerL3Extractor
from cmer_edge.features.registry import make_audio_extractor
from cmer_edge.runtime.backends import BackendChoice, BackendConfig, Runner, open_runner

log = logging.getLogger("cmer_edge")


@dataclass
class TextEncoder:
    """text -> features with the bundle's tokenizer (text_tokenizer.json) and encoder runner."""

    runner: Runner
    choice: BackendChoice
    tokenizer: Any
    max_tokens: int
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, dim] float32, each text run on its own; texts longer than max_tokens are cut (keeping the
        final </s>).

        One text per run, never a padded batch: the int8 encoder quantises its activations with
        ranges taken over the whole call, so in a batch a line's features would depend on the lines
        beside it (cosine 0.993 mean, 0.970 worst against the line alone: the 1,109 MELD dev lines in the
        32-line batches the training cache used).
        Training caches, `evaluate` and `listen` all get the features the live runtime computes, and
        on CPU it costs about the same per line as padded batches (docs/results.md, F-L24-FVA-1L).
        """
        if not texts:
            raise ValueError("encode() needs at least one text")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {i} is empty or not a string: {text!r}")
        seqs = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        cut = sum(len(ids) > self.max_tokens for ids in seqs)
        if cut:
            log.warning("%d text(s) longer than %d tokens were cut", cut, self.max_tokens)
        out = np.zeros((len(seqs), self.dim), np.float32)
        for row, ids in enumerate(seqs):
            ids = ids if len(ids) <= self.max_tokens else ids[:self.max_tokens - 1] + ids[-1:]
            run = self.runner.run({"input_ids": np.array([ids], np.int64),
                                   "attention_mask": np.ones((1, len(ids)), np.int64)})
            out[row] = np.asarray(run["features"], np.float32)[0]
        return out

    def __call__(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def open_text_encoder(bundle: Bundle, config: BackendConfig | None = None) -> TextEncoder:
    from tokenizers import Tokenizer

    spec = bundle.manifest.features.text
    runner, choice = open_runner(bundle, "text_encoder", config)
    tokenizer = Tokenizer.from_file(str(bundle.file("text_tokenizer")))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    dim = spec.dim if spec is not None and spec.dim is not None else bundle.head_config.text_dim
    max_tokens = spec.max_tokens if spec is not None else 128
    return TextEncoder(runner, choice, tokenizer, max_tokens, dim)


def _opensmile_part(part: AudioPart):
    ext = make_audio_extractor(part.name)
    want = part.params.get("config_sha256")
    have = ext.spec().get("params", {}).get("config_sha256")
    if want and have and want != have:
        raise BundleError(f"{part.name}: this openSMILE config (sha256 {have[:12]}...) is not the one the "
                          f"bundle was trained with ({want[:12]}...)")
    return ext


def _whisper_part(part: AudioPart, config: BackendConfig | None):
    threads = config.threads if config is not None and config.threads else 1
    ext = make_audio_extractor(part.name, compute_type=part.params.get("compute_type", "int8"), threads=threads)
    have = ext.spec()["weights_sha256"]
    if part.weights_sha256 and part.weights_sha256 != have:
        raise BundleError(f"{part.name}: the installed Whisper model {ext.model_dir} (sha256 {have[:12]}...) is "
                          f"not the one the bundle was trained with ({part.weights_sha256[:12]}...)")
    return ext


def open_audio_extractor(bundle: Bundle, config: BackendConfig | None = None) -> tuple[Any, BackendChoice | None]:
    """The bundle's audio extractor (features.audio) with its L3 part on the chosen backend;
    returns (extractor, the L3 backend choice or None when there is no L3 part)."""
    spec = bundle.manifest.features.audio
    if spec is None:
        raise BundleError(f"bundle {bundle.path} has no features.audio extractor spec")
    parts, choice = [], None
    for part in spec.parts:
        if part.kind == "l3":
            runner, choice = open_runner(bundle, "audio_encoder", config)
            parts.append(RunnerL3Extractor(L3Config.from_dict(thaw(part.params)), runner, spec=thaw(part.raw)))
        elif part.kind == "opensmile":
            parts.append(_opensmile_part(part))
        elif part.kind == "whisper_encoder":
            parts.append(_whisper_part(part, config))
        else:
            raise BundleError(f"features.audio part {part.name!r} has unknown kind {part.kind!r}")
    extractor = parts[0] if len(parts) == 1 else ChainExtractor(parts, parallel=True)
    if extractor.dim != bundle.head_config.audio_dim:
        raise BundleError(f"audio features are {extractor.dim}-d, the head expects {bundle.head_config.audio_dim}")
    return extractor, choice
