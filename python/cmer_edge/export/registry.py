"""The registered exporters: one small factory per model, bundle -> ExportPlan.

A factory raises `NotExportable` (with the reason) when a bundle has no such model, e.g. a
text-only head has no audio encoder. Built-in exporters are imported lazily on first lookup, so
importing this module costs nothing; `register_exporter` adds more.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from cmer_edge.bundle import Bundle, ModelNotInBundle
from cmer_edge.export.plan import ExportPlan

ExporterFactory = Callable[[Bundle], ExportPlan]

# model name -> "module:function"; order = export order.
_BUILTIN = {
    "head": "cmer_edge.export.head:plan_head",
    "text_encoder": "cmer_edge.export.text:plan_text_encoder",
    "audio_encoder": "cmer_edge.export.audio:plan_audio_encoder",
}
_REGISTERED: dict[str, ExporterFactory] = {}


NotExportable = ModelNotInBundle  # this bundle does not contain the model (the message says why)


def register_exporter(model: str, factory: ExporterFactory) -> None:
    """Add (or replace) the exporter of `model`."""
    if not model.isidentifier():
        raise ValueError(f"exporter name must be an identifier (it names files), got {model!r}")
    _REGISTERED[model] = factory


def exporter_names() -> list[str]:
    return list(dict.fromkeys([*_BUILTIN, *_REGISTERED]))


def get_exporter(model: str) -> ExporterFactory:
    if model in _REGISTERED:
        return _REGISTERED[model]
    if model not in _BUILTIN:
        raise ValueError(f"no exporter for model {model!r} (known: {', '.join(exporter_names())})")
    module, func = _BUILTIN[model].split(":")
    factory = getattr(importlib.import_module(module), func)
    _REGISTERED[model] = factory
    return factory


def plan_for(bundle: Bundle, model: str) -> ExportPlan:
    """The ExportPlan of `model` in `bundle`; NotExportable if the bundle has none."""
    return get_exporter(model)(bundle)
