"""The audio extractor factory: name -> extractor (torch-free until a PyTorch L3 network is built).

    ext = make_audio_extractor("opensmile.eGeMAPSv02")      # see cmer_edge.features.base for names
    chain = make_audio_extractor("opensmile.eGeMAPSv02+edgel3.sea.64", **{"edgel3.sea.64": {...}})

Kept apart from the interface (`features.base`) so that the implementations import the interface
and only this module imports the implementations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmer_edge.features.base import AudioExtractor, ChainExtractor
from cmer_edge.features.l3.config import PRESETS
from cmer_edge.features.l3.ort import OnnxL3Extractor
from cmer_edge.features.opensmile_func import FEATURE_SETS, OpenSmileExtractor
from cmer_edge.features.whisper_encoder import WHISPER_PRESETS, WhisperEncoderExtractor


def _opensmile(name: str, **options: Any) -> AudioExtractor:
    return OpenSmileExtractor(name.split(".", 1)[1], **options)


def _l3(name: str, **options: Any) -> AudioExtractor:
    onnx_path = options.pop("onnx", None)
    if onnx_path is not None:
        fixed = set(options) - {"threads", "providers", "max_windows_per_call"}
        if fixed:
            raise ValueError(f"{name}: with onnx= the graph fixes weights, hop and pooling; drop {sorted(fixed)}")
        ext = OnnxL3Extractor(onnx_path, **options)
        if ext.name != name:
            raise ValueError(f"{onnx_path} holds {ext.name!r}, not {name!r}")
        return ext
    from cmer_edge.features.l3.extractor import TorchL3Extractor

    return TorchL3Extractor.from_name(name, **options)


def _registry() -> dict[str, Callable[..., AudioExtractor]]:
    table: dict[str, Callable[..., AudioExtractor]] = {f"opensmile.{s}": _opensmile for s in FEATURE_SETS}
    table.update({name: _l3 for name in PRESETS})
    table.update({name: WhisperEncoderExtractor for name in WHISPER_PRESETS})
    return table


def audio_extractor_names() -> list[str]:
    """Every name `make_audio_extractor` accepts (single parts; join with "+" to chain)."""
    return sorted(_registry())


def make_audio_extractor(name: str, **options: Any) -> AudioExtractor:
    """Build the extractor `name` (see the module docstring); "a+b" builds a `ChainExtractor`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"extractor name must be a non-empty string, got {name!r}")
    table = _registry()
    if "+" in name:
        parts = name.split("+")
        unknown = set(options) - set(parts)
        if unknown:
            raise ValueError(f"options for a chain are keyed by part name {parts}; got {sorted(unknown)}")
        for part, opts in options.items():
            if not isinstance(opts, dict):
                raise ValueError(f"options for chain part {part!r} must be a dict, got {type(opts).__name__}")
        return ChainExtractor([make_audio_extractor(p, **options.get(p, {})) for p in parts])
    if name not in table:
        raise ValueError(f"unknown audio extractor {name!r}; known: {', '.join(sorted(table))}")
    return table[name](name, **options)
