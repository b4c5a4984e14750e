"""`python -m cmer_edge.listen`: live emotion recognition from the microphone or a file.

One line per utterance, e.g. `[00:12.4–00:14.1] joy 0.82 | "that's great" | 38 ms`, or one JSON
object per utterance with --json. Exit codes: 0 ok, 2 bad input (no microphone, unreadable file,
missing or corrupt bundle), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.listen", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m cmer_edge.listen                      # default microphone, Whisper tiny.en\n"
               "  python -m cmer_edge.listen --input talk.wav --json\n"
               "  robot_asr | python -m cmer_edge.listen --asr external   # JSON lines {\"text\", \"start_s\", \"end_s\"}")
    add_recognizer_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    return p


def add_recognizer_arguments(p: argparse.ArgumentParser) -> None:
    """The source / ASR / bundle options, shared by `listen` and `serve`."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, help="audio file instead of the microphone (any rate/channels)")
    src.add_argument("--mic", default=None, help="input device name (substring) or index")
    src.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    p.add_argument("--realtime", action="store_true", help="with --input: pace the file in real time")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the embedded edge bundle)")
    p.add_argument("--asr", choices=("whisper", "external", "none"), default="whisper",
                   help="whisper: on-device ASR; external: JSON lines / text lines on stdin; none: audio only")
    p.add_argument("--asr-model", default="tiny.en", help="faster-whisper model id or path")
    p.add_argument("--window", type=int, default=None, help="dialogue context in utterances (default: bundle's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device of the head")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto",
                   help="encoder backend")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this much audio")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if args.list_devices:
        return list_devices()
    from cmer_edge.audio.convert import AudioError
    from cmer_edge.audio.devices import NoInputDeviceError
    from cmer_edge.model.bundle import BundleError
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    try:
        source = open_source(args)
        recognizer = Recognizer(RecognizerConfig(
            bundle=str(args.bundle) if args.bundle else None, asr=args.asr, asr_model=args.asr_model,
            window_utts=args.window, device=args.device, backend=args.backend, threads=args.threads))
    except NoInputDeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("use --input file.wav on machines without a microphone", file=sys.stderr)
        return 2
    except (AudioError, BundleError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.asr == "external":
        recognizer.external_text.start_reader(sys.stdin)
    try:
        for event in recognizer.stream(source):
            print(event.to_json() if args.json else event.console_line(), flush=True)
    except KeyboardInterrupt:
        pass
    except AudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        recognizer.close()
    from dataclasses import asdict

    stats = dict(asdict(recognizer.stats), **{f"source_{k}": v for k, v in asdict(source.stats).items()})
    print(("summary " + json.dumps(stats)) if args.json else f"summary: {stats}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
