"""Every command of `python -m cmer_edge <command>` (and its console script `cmer-edge-<command>`).

One line per command: name -> (module:function taking argv, one-line description). Add a CLI by
writing `main(argv: list[str] | None = None) -> int` in its module and adding its line here (and
a console script in pyproject.toml when users run it directly).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "listen": ("cmer_edge.listen:main", "live recognition from the microphone or a file (--input file.wav)"),
    "serve": ("cmer_edge.serve.__main__:main", "live recognition plus a local display page and event stream "
                                               "(http://127.0.0.1:8765/)"),
    "finetune": ("cmer_edge.finetune:main", "fine-tune a text encoder on MELD utterances (the paper's first step)"),
    "extract": ("cmer_edge.extract:main", "corpus -> feature store (openSMILE, L3, text encoder)"),
    "train": ("cmer_edge.train:main", "train the CM-RoBERTa head on a feature store"),
    "train-edge": ("cmer_edge.training.edge:main", "build the embedded edge bundle (MELD text + RAVDESS/SAVEE/EmoDB speech)"),
    "evaluate": ("cmer_edge.evaluate:main", "weighted F1 tables, confusion matrix, predictions CSV"),
    "export": ("cmer_edge.export.cli:export_main", "a bundle's head and encoders -> ONNX (checked against PyTorch)"),
    "verify": ("cmer_edge.export.cli:verify_main", "parity of a bundle's ONNX graphs against PyTorch"),
    "build-engine": ("cmer_edge.export.engine_cli:build_engine_main", "ONNX -> TensorRT engines, on the device"),
    "build-bundle": ("cmer_edge.export.build_bundle:main", "a deployable bundle from a trained head: encoders -> "
                                                           "ONNX (int8), verified, packed (e.g. the MPNet base bundle)"),
    "pack": ("cmer_edge.bundle.pack:main", "a deployable copy of a bundle (chosen files, float16 head)"),
    "ensemble": ("cmer_edge.bundle.ensemble:main", "one bundle from several alike bundles (their heads' "
                                                   "probabilities averaged)"),
    "backends": ("cmer_edge.runtime.backends:main", "encoder backends on this machine, and per bundle"),
    "speech-cv": ("cmer_edge.training.speech_cv:main", "audio branch: RAVDESS speaker-independent / leave-one-corpus-out"),
    "meld-audio": ("cmer_edge.data.meld_audio:main", "MELD.Raw mp4 -> 16 kHz mono wav"),
    "meld-stats": ("cmer_edge.data.meld_stats:main", "counts of a MELD copy, checked against the official sizes"),
    "bench": ("cmer_edge.bench.__main__:main", "benchmarks: head, pipeline, encoders, audio, stages"),
    "meld-synth": ("cmer_edge.testing.meld_synth:main", "development: a synthetic MELD.Raw corpus (espeak-ng)"),
}


def resolve(name: str) -> Callable[[list[str] | None], int]:
    """The main function of command `name`."""
    module, func = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), func)
