"""The typed bundle manifest: parsed and validated once, then passed around as this object.

`Manifest.from_dict(raw)` checks every field the runtime, the exporters and the trainers read and
raises `BundleError` with one line naming the bad field (`head.text_dim`, `window_utts`, ...);
`to_dict()` writes it back (the on-disk format is `format_version` 1, unchanged). Feature specs keep
their full JSON (`raw`) next to the typed fields, because extractors rebuild themselves from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from cmer_edge.bundle.errors import BundleError
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.model.voice_pool import pool_problem

FORMAT = "cmer_edge.bundle"
FORMAT_VERSION = 1
PROTOCOLS = ("paper", "live")
AUDIO_NORMS = ("global", "speaker")
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
HEAD_PRECISIONS = ("fp32", "bf16", "int8")  # the native head's input projections (runtime.head.PRECISIONS)
# top-level keys that are provenance: kept as written, never read by the runtime
PROVENANCE_KEYS = ("recipe", "training", "packed_from", "store", "random_init_seed", "source", "ensemble")
_TYPED = {"format", "format_version", "name", "profile", "labels", "head", "head_members", "features", "window_utts",
          "protocol",
          "audio_norm", "metrics", "files", "sha256", "runtime", "licences", *PROVENANCE_KEYS}


def freeze(value: Any) -> Any:
    """A read-only deep copy of JSON data (dicts become mappingproxies, lists tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON types (dict, list) from `freeze`d data."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _int(raw: Mapping, key: str, where: str, default: Any = ..., minimum: int = 1) -> int:
    if key not in raw:
        if default is ...:
            raise BundleError(f"manifest field {where}{key} is missing")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BundleError(f"manifest field {where}{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _str(raw: Mapping, key: str, where: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> Any:
    if key not in raw or raw[key] is None:
        if default is ...:
            raise BundleError(f"manifest field {where}{key} is missing")
        return default
    value = raw[key]
    if not isinstance(value, str) or (choices and value not in choices):
        want = f"one of {choices}" if choices else "a string"
        raise BundleError(f"manifest field {where}{key} must be {want}, got {value!r}")
    return value


def _mapping(raw: Mapping, key: str, where: str) -> Mapping:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise BundleError(f"manifest field {where}{key} must be an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class AudioPart:
    """One audio extractor of features.audio (an openSMILE set or an L3 network)."""

    name: str
    kind: str | None  # "opensmile", "l3", ...
    dim: int
    params: Mapping[str, Any]
    weights: str | None
    weights_sha256: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "AudioPart":
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest field {where} must be an object, got {type(raw).__name__}")
        return cls(_str(raw, "name", where + "."), _str(raw, "kind", where + ".", default=None),
                   _int(raw, "dim", where + "."),
                   freeze(_mapping(raw, "params", where + ".")), raw.get("weights"), raw.get("weights_sha256"),
                   freeze(raw))


@dataclass(frozen=True)
class AudioFeatures:
    """features.audio: one extractor, or a chain of parts whose vectors are concatenated."""

    name: str
    dim: int
    parts: tuple[AudioPart, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "AudioFeatures":
        where = "features.audio"
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest field {where} must be an object, got {type(raw).__name__}")
        dim = _int(raw, "dim", where + ".")
        if raw.get("kind") == "chain" or "parts" in raw:
            items = raw.get("parts")
            if not isinstance(items, list) or not items:
                raise BundleError(f"manifest field {where}.parts must be a non-empty list")
            parts = tuple(AudioPart.from_dict(p, f"{where}.parts[{i}]") for i, p in enumerate(items))
            if sum(p.dim for p in parts) != dim:
                raise BundleError(f"manifest field {where}.dim is {dim}, its parts sum to {sum(p.dim for p in parts)}")
        else:
            parts = (AudioPart.from_dict(raw, where),)
        return cls(_str(raw, "name", where + ".", default="+".join(p.name for p in parts)), dim, parts,
                   freeze(raw))

    def has_kind(self, kind: str) -> bool:
        return any(p.kind == kind for p in self.parts)


@dataclass(frozen=True)
class TextFeatures:
    """features.text: the text encoder (a Hugging Face id, or a directory inside the bundle)."""

    name: str | None
    dim: int | None
    model: str | None
    max_tokens: int
    pad_token_id: int | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "TextFeatures":
        where = "features.text."
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest field features.text must be an object, got {type(raw).__name__}")
        return cls(_str(raw, "name", where, default=None), _int(raw, "dim", where, default=None),
                   _str(raw, "model", where, default=None), _int(raw, "max_tokens", where, default=128, minimum=4),
                   _int(raw, "pad_token_id", where, default=None, minimum=0), freeze(raw))


@dataclass(frozen=True)
class Features:
    audio: AudioFeatures | None = None
    text: TextFeatures | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: freeze({}), repr=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "Features":
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest field features must be an object, got {type(raw).__name__}")
        audio = AudioFeatures.from_dict(raw["audio"]) if raw.get("audio") is not None else None
        text = TextFeatures.from_dict(raw["text"]) if raw.get("text") is not None else None
        return cls(audio, text, freeze(raw))


@dataclass(frozen=True)
class RuntimeSection:
    """What the runtime should pick by default: the ONNX precision per model, the native head's
    precision (`head_precision`: int8 where the stored input projections are int8 already, so it
    changes no value) and the weights of the voice pool (cmer_edge.model.voice_pool: how far an
    emotional voice, and how far the words alone under a neutral voice, count; 0 and 0 = the fused
    head as trained)."""

    onnx_precision: Mapping[str, str] = field(default_factory=lambda: freeze({}))
    voice_weight: float = 0.0
    text_weight: float = 0.0
    head_precision: str = "fp32"
    raw: Mapping[str, Any] = field(default_factory=lambda: freeze({}), repr=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "RuntimeSection":
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest field runtime must be an object, got {type(raw).__name__}")
        precision = _mapping(raw, "onnx_precision", "runtime.")
        for model, value in precision.items():
            _str(precision, model, "runtime.onnx_precision.", choices=ONNX_PRECISIONS)
        weights = {}
        for key in ("voice_weight", "text_weight"):
            weights[key] = weight = raw.get(key, 0.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
                raise BundleError(f"manifest field runtime.{key} must be a number in [0, 1], got {weight!r}")
        head_precision = _str(raw, "head_precision", "runtime.", default="fp32", choices=HEAD_PRECISIONS)
        return cls(onnx_precision=freeze(precision), voice_weight=float(weights["voice_weight"]),
                   text_weight=float(weights["text_weight"]), head_precision=head_precision, raw=freeze(raw))

    def to_dict(self) -> dict:
        out = dict(thaw(self.raw), onnx_precision=thaw(self.onnx_precision))
        for key in ("voice_weight", "text_weight"):
            out.pop(key, None)
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Manifest:
    """manifest.json of a bundle (see the module docstring)."""

    head: HeadConfig
    head_members: int = 1  # heads of this config in head.safetensors, their probabilities averaged
    name: str | None = None
    profile: str | None = None
    labels: tuple[str, ...] = EMOTIONS
    features: Features = field(default_factory=Features)
    window_utts: int = 16
    protocol: str | None = None
    audio_norm: str = "global"
    metrics: Mapping[str, Any] = field(default_factory=lambda: freeze({}))
    files: Mapping[str, str] = field(default_factory=lambda: freeze({}))
    sha256: Mapping[str, str] = field(default_factory=lambda: freeze({}))
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    licences: Mapping[str, str] = field(default_factory=lambda: freeze({}))
    provenance: Mapping[str, Any] = field(default_factory=lambda: freeze({}))
    extra: Mapping[str, Any] = field(default_factory=lambda: freeze({}))  # unknown keys, kept as written
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, raw: Any) -> "Manifest":
        """Validate raw manifest JSON; BundleError naming the first bad field."""
        if not isinstance(raw, Mapping):
            raise BundleError(f"manifest must be a JSON object, got {type(raw).__name__}")
        if raw.get("format") != FORMAT:
            raise BundleError(f"manifest field format is {raw.get('format')!r}, expected {FORMAT!r}")
        if raw.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"manifest field format_version {raw.get('format_version')!r} is not supported "
                              f"(this cmer_edge reads {FORMAT_VERSION})")
        head = _head(raw.get("head"))
        labels = raw.get("labels", list(EMOTIONS))
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise BundleError(f"manifest field labels must be a list of names, got {labels!r}")
        if len(labels) != head.num_classes:
            raise BundleError(f"manifest field labels has {len(labels)} labels for {head.num_classes} classes")
        files = _string_map(raw, "files")
        sha = _string_map(raw, "sha256")
        for role, name in files.items():
            if name not in sha:
                raise BundleError(f"manifest field sha256 has no digest for files.{role} ({name!r})")
            if not re.fullmatch(r"[0-9a-f]{64}", sha[name]):
                raise BundleError(f"manifest field sha256.{name} is not a sha256 hex digest: {sha[name]!r}")
        if "head" not in files:
            raise BundleError("manifest field files.head is missing")
        features = Features.from_dict(raw.get("features", {}))
        runtime = RuntimeSection.from_dict(raw.get("runtime", {}))
        problem = pool_problem(runtime.voice_weight, head.modalities, labels, runtime.text_weight)
        if problem:
            field_name = "voice_weight" if runtime.voice_weight else "text_weight"
            raise BundleError(f"manifest field runtime.{field_name}: {problem}")
        # feature dims vs the head are checked where the encoders are opened (their messages say which)
        return cls(
            head=head, head_members=_int(raw, "head_members", "", default=1),
            name=_str(raw, "name", "", default=None), profile=_str(raw, "profile", "", default=None),
            labels=tuple(labels), features=features, window_utts=_int(raw, "window_utts", "", default=16),
            protocol=_str(raw, "protocol", "", default=None, choices=PROTOCOLS),
            audio_norm=_str(raw, "audio_norm", "", default="global", choices=AUDIO_NORMS),
            metrics=freeze(_mapping(raw, "metrics", "")), files=freeze(files), sha256=freeze(sha),
            runtime=runtime,
            licences=freeze(_string_map(raw, "licences")),
            provenance=freeze({k: raw[k] for k in PROVENANCE_KEYS if k in raw}),
            extra=freeze({k: v for k, v in raw.items() if k not in _TYPED}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**thaw(self.extra), **thaw(self.provenance)}
        out.update(format=FORMAT, format_version=self.format_version, labels=list(self.labels),
                   head=self.head.to_dict(), **({"head_members": self.head_members} if self.head_members > 1 else {}),
                   features=thaw(self.features.raw), window_utts=self.window_utts,
                   audio_norm=self.audio_norm, metrics=thaw(self.metrics), files=thaw(self.files),
                   sha256=thaw(self.sha256))
        out.update({k: v for k, v in (("name", self.name), ("profile", self.profile), ("protocol", self.protocol))
                    if v is not None})
        runtime = self.runtime.to_dict()
        if runtime.get("onnx_precision") or len(runtime) > 1:
            out["runtime"] = runtime
        if self.licences:
            out["licences"] = thaw(self.licences)
        return out

    def onnx_precision(self, model: str) -> str:
        """The ONNX precision the bundle ships for `model` (fp32 unless the runtime section says)."""
        return self.runtime.onnx_precision.get(model, "fp32")


def _head(raw: Any) -> HeadConfig:
    if not isinstance(raw, Mapping):
        raise BundleError(f"manifest field head must be an object, got {type(raw).__name__}")
    known = {f.name for f in fields(HeadConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BundleError(f"manifest field head.{unknown[0]} is not a HeadConfig field")
    for name in ("audio_dim", "text_dim"):
        _int(raw, name, "head.")
    for f in fields(HeadConfig):
        if f.name in raw and f.type in ("int", int):
            _int(raw, f.name, "head.")
    try:
        return HeadConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"manifest field head: {exc}") from exc


def _string_map(raw: Mapping, key: str) -> dict[str, str]:
    value = _mapping(raw, key, "")
    for k, v in value.items():
        if not isinstance(v, str) or not v:
            raise BundleError(f"manifest field {key}.{k} must be a non-empty string, got {v!r}")
    return dict(value)
