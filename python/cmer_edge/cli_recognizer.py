"""The recognizer's command-line options and what they open, shared by `listen` and `serve`:
`add_recognizer_arguments(parser)`, `open_source(args)`, `open_recognizer(args)`, `list_devices()`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cmer_edge.cli_common import UserError, check_cuda_device, fraction, seconds_arg, threads_arg, window_arg

log = logging.getLogger("cmer_edge")


def add_recognizer_arguments(p: argparse.ArgumentParser) -> None:
    """The source / ASR / bundle options, shared by `listen` and `serve`."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, help="audio file instead of the microphone (any rate/channels)")
    src.add_argument("--mic", default=None, help="input device name (substring) or index")
    src.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    p.add_argument("--realtime", action="store_true",
                   help="with --input: pace the file in real time (then, like a microphone, audio is dropped "
                        "when inference falls behind; without it nothing is dropped)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the embedded edge bundle)")
    p.add_argument("--asr", choices=("whisper", "external", "none"), default="whisper",
                   help="whisper: on-device ASR; external: JSON lines / text lines on stdin; none: audio only")
    p.add_argument("--asr-model", default="tiny.en", help="faster-whisper model id or path")
    p.add_argument("--window", type=window_arg, default=None, help="dialogue context in utterances (default: bundle's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device of the head")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto",
                   help="encoder backend")
    p.add_argument("--threads", type=threads_arg, default=2, help="CPU threads, 1-64")
    p.add_argument("--voice-weight", type=fraction("--voice-weight"), default=None,
                   help="how far an emotional voice outweighs the words, 0-1 (default: the bundle's; 0: off)")
    p.add_argument("--text-weight", type=fraction("--text-weight"), default=None,
                   help="how far the words alone decide when the voice sounds neutral, 0-1 (default: the bundle's; "
                        "0: off)")
    p.add_argument("--max-seconds", type=seconds_arg, default=None, help="stop after this much audio")
    p.add_argument("-v", "--verbose", action="store_true")


def list_devices(out=sys.stdout) -> int:
    from cmer_edge.audio.devices import list_input_devices

    devices = list_input_devices()
    for d in devices:
        print(d.describe(), file=out)
    if not devices:
        print("no audio input devices found", file=out)
    return 0


def _mic(value: str | None):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def open_source(args):
    if args.input is not None:
        from cmer_edge.audio.sources import FileSource

        return FileSource(args.input, realtime=args.realtime, max_seconds=args.max_seconds)
    from cmer_edge.audio.microphone import MicrophoneSource

    return MicrophoneSource(_mic(args.mic), max_seconds=args.max_seconds)


def open_recognizer(args):
    """The Recognizer for `args`; anything that goes wrong loading the bundle, the encoders or the ASR
    model is bad input (a path, a file, a device) and becomes a UserError naming it."""
    from cmer_edge.bundle import BundleError
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    check_cuda_device(args.device)
    if args.asr == "whisper" and _looks_like_path(args.asr_model) and not Path(args.asr_model).exists():
        raise UserError(f"--asr-model {args.asr_model}: no such file or directory (a faster-whisper model "
                        "directory or an id such as tiny.en)")
    try:
        config = RecognizerConfig(bundle=str(args.bundle) if args.bundle else None, asr=args.asr,
                                  asr_model=args.asr_model, window_utts=args.window, device=args.device,
                                  backend=args.backend, threads=args.threads, voice_weight=args.voice_weight,
                                  text_weight=args.text_weight)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    where = f"bundle {args.bundle}" if args.bundle else "the embedded bundle"
    try:
        return Recognizer(config)
    except (BundleError, FileNotFoundError, UserError):
        raise
    except Exception as exc:  # corrupt ONNX / safetensors, bad manifest values, ASR model load failures
        raise UserError(f"cannot start the recognizer with {where}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith(".")
