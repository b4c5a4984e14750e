"""The training data of the embedded default bundle, computed with the runtime's own encoders.

- MELD dialogues: text features from the bundle's exported text encoder (ONNX Runtime, exactly
  what `listen` runs), audio missing (no MELD audio here);
- speech clips from manifests (RAVDESS, SAVEE, EmoDB): audio features from the runtime extractors,
  text features of their real transcripts (English only; empty -> audio-only), each clip a
  one-utterance dialogue. The audio of a clip is what the live segmenter hands on from it
  (`audio.segmenter.speech_span`): the corpora's own silence before and after the speech is not
  what a kiosk hears.
Each stage is cached in OUT/cache/*.npz, keyed by its inputs, so an interrupted build resumes.

Audio normalisation as it runs live: the runtime z-scores audio with per-session running statistics
shrunk towards the training population (`OnlineZScore`). `online_normalised` reproduces that for a
training clip after k other clips of the same speaker, so the head is trained on what it sees at
run time, from the first utterance of a stranger (k = 0) to a well-known speaker.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from cmer_edge.audio.segmenter import clip_speech
from cmer_edge.audio.vad import SileroVad
from cmer_edge.data.meld import load_meld_split
from cmer_edge.data.speech_manifest import Clip, load_manifest
from cmer_edge.features.normalise import OnlineZScore
from cmer_edge.training.dialogues import Dialogue

log = logging.getLogger("cmer_edge")


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(path: Path, key: str, fields: tuple[str, ...], compute):
    """The arrays `fields` of np.load(path) when it holds `key` and them, else compute() -> a dict of
    exactly those arrays, saved with the key. Only `fields` come back, so a file written by an older
    version with more arrays under the same key still concatenates with a new one."""
    if path.is_file():
        data = dict(np.load(path, allow_pickle=False))
        if str(data.get("_key", "")) == key and all(f in data for f in fields):
            log.info("cached: %s", path)
            return {f: data[f] for f in fields}
    data = compute()
    if sorted(data) != sorted(fields):
        raise AssertionError(f"{path.name}: computed {sorted(data)}, declared {sorted(fields)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, _key=np.array(key), **data)
    tmp.replace(path)
    return data


# Bumped when the audio features of a cache would change: 2 = each clip's speech span (speech_span),
# as live; 1 = the whole file, the corpus's silence included.
CLIP_AUDIO = 2

# what a clip cache file holds (the audio file, and its text file beside it)
AUDIO_FIELDS, TEXT_FIELDS = ("x_a", "audio_ok"), ("x_t", "text_ok")

# Bumped when the text features of a cache would change: 2 = one line per encoder run, as live
# (runtime.encoders.TextEncoder.encode); 1 = padded 32-line batches (int8: batch-dependent).
TEXT_FEATURES = 2


def encode_texts(encoder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, dim], usable [N]) with the runtime text encoder; empty texts are unusable."""
    x = np.zeros((len(texts), encoder.dim), np.float32)
    usable = np.array([bool(t.strip()) for t in texts])
    rows = np.flatnonzero(usable)
    if len(rows):
        x[rows] = encoder.encode([texts[i].strip() for i in rows])
    return x, usable


def meld_split(encoder, meld_dir: Path, split: str, cache: Path) -> list[Dialogue]:
    dialogues = load_meld_split(meld_dir, split)
    utts = [u for d in dialogues for u in d.utterances]

    def compute():
        x_t, ok = encode_texts(encoder, [u.text for u in utts])
        return {"x_t": x_t, "ok": ok}

    key = _key("meld", str(meld_dir), split, len(utts), encoder.dim, TEXT_FEATURES)
    data = cached(cache / f"meld_{split}.npz", key, ("x_t", "ok"), compute)
    out, row = [], 0
    for d in dialogues:
        n = len(d.utterances)
        present = np.stack([np.zeros(n), data["ok"][row:row + n]], axis=1).astype(np.float32)
        out.append(Dialogue(f"MELD/{split}/{d.dialogue_id}", [u.utterance_id for u in d.utterances], np.zeros((n, 0)),
                            data["x_t"][row:row + n], present, np.array(d.labels, np.int64)))
        row += n
    return out


def clip_cache_file(cache: Path, manifest_path: Path) -> Path:
    """Where the audio features of one manifest's clips are cached (one file per manifest; their
    transcripts' features beside it, `*.text.npz`)."""
    return cache / f"clips_{_key(str(Path(manifest_path).resolve()))}.npz"


def _text_cache_file(audio_file: Path) -> Path:
    return audio_file.with_name(audio_file.stem + ".text.npz")


def clip_features(extractor, encoder, clips: list[Clip], names: str, cache_file: Path) -> dict[str, np.ndarray]:
    """Raw audio features, transcript features and their usability for every clip (cached: the
    audio by the extractor chain, the text by the encoder, so either can change alone)."""
    def audio():
        x_a = np.zeros((len(clips), extractor.dim), np.float32)
        audio_ok = np.zeros(len(clips), bool)
        speech_found = np.zeros(len(clips), bool)
        vad = SileroVad()
        for i, clip in enumerate(clips):
            try:
                speech, speech_found[i] = clip_speech(clip.path, vad)
                x_a[i], audio_ok[i] = extractor(speech), True
            except ValueError as exc:
                log.warning("no audio features for %s: %s", clip.path, exc)
            if i % 200 == 0:
                log.info("clip audio features %d/%d (%s)", i, len(clips), cache_file.name)
        if (audio_ok & ~speech_found).any():
            log.warning("%s: the VAD found no speech in %d of %d clips; their whole recordings were used",
                        cache_file.name, (audio_ok & ~speech_found).sum(), len(clips))
        return {"x_a": x_a, "audio_ok": audio_ok}

    texts = [c.transcript if c.language in ("", "en") else "" for c in clips]

    def text():
        x_t, text_ok = encode_texts(encoder, texts) if encoder is not None else (
            np.zeros((len(clips), 0), np.float32), np.zeros(len(clips), bool))
        return {"x_t": x_t, "text_ok": text_ok}

    paths = [str(c.path) for c in clips]
    dim = getattr(encoder, "dim", 0)
    return {**cached(cache_file, _key("clip-audio", names, paths, CLIP_AUDIO), AUDIO_FIELDS, audio),
            **cached(_text_cache_file(cache_file), _key("clip-text", paths, texts, dim, TEXT_FEATURES),
                     TEXT_FIELDS, text)}


def manifests_features(extractor, encoder, manifest_paths, cache: Path) -> tuple[list[Clip], dict[str, np.ndarray]]:
    """Clips of several manifests and their features, cached per manifest, concatenated in order."""
    clips, parts = [], []
    for path in manifest_paths:
        these = load_manifest(path).clips
        clips += these
        parts.append(clip_features(extractor, encoder, these, extractor.name, clip_cache_file(cache, path)))
    return clips, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_cached_features(manifest_paths, cache: Path) -> dict[str, np.ndarray]:
    """The cached features of these manifests (as `manifests_features` wrote them), without encoders."""
    parts = []
    for path in manifest_paths:
        audio_file = clip_cache_file(cache, path)
        audio, text = np.load(audio_file), np.load(_text_cache_file(audio_file))
        parts.append({**{f: audio[f] for f in AUDIO_FIELDS}, **{f: text[f] for f in TEXT_FIELDS}})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def online_normalised(x_raw: np.ndarray, speakers: list[str], prior_mean: np.ndarray, prior_var: np.ndarray,
                      k: int, rng: np.random.Generator, usable: np.ndarray | None = None) -> np.ndarray:
    """Each row z-scored as the live normaliser would after hearing k other usable rows of its
    speaker (random order) and then the row itself."""
    out = np.zeros_like(x_raw, dtype=np.float32)
    speakers = np.asarray(speakers)
    usable = np.ones(len(x_raw), bool) if usable is None else usable
    for i in np.flatnonzero(usable):
        others = np.flatnonzero((speakers == speakers[i]) & usable)
        others = others[others != i]
        norm = OnlineZScore(prior_mean, prior_var)
        for j in rng.permutation(others)[:k]:
            norm.update_then_apply(x_raw[j])
        out[i] = norm.update_then_apply(x_raw[i])
    return out


def clip_dialogues(data: dict[str, np.ndarray], clips: list[Clip], rows: np.ndarray, x_a: np.ndarray,
                   tag: str) -> list[Dialogue]:
    """One-utterance dialogues for `rows`, audio already normalised (`x_a`), raw kept."""
    out = []
    for i in rows:
        present = np.array([[float(data["audio_ok"][i]), float(data["text_ok"][i])]], np.float32)
        out.append(Dialogue(f"{clips[i].corpus}/{clips[i].path.stem}/{tag}", [0], x_a[i:i + 1].astype(np.float32),
                            data["x_t"][i:i + 1], present, np.array([clips[i].meld_label], np.int64),
                            x_a_raw=data["x_a"][i:i + 1]))
    return out
