"""`python -m cmer_edge.listen`: live emotion recognition from the microphone or a file.

One line per utterance, e.g. `[00:12.4–00:14.1] joy 0.82 | "that's great" | 38 ms`, or one JSON
object per utterance with --json. Exit codes (cmer_edge.cli_common): 0 ok, 2 bad input (bad argument,
no microphone, unreadable file, missing or corrupt bundle, no usable GPU) as one `error: ...` line,
130 interrupted (after the summary), 141 stdout closed by its reader, 1 an unexpected error.
The summary (stderr) holds the recognizer's, the source's and the external text's counters.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cmer_edge.cli_common import UserError, check_cuda_device, cli_entry, seconds_arg, threads_arg, window_arg

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.listen", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m cmer_edge.listen                      # default microphone, Whisper tiny.en\n"
               "  python -m cmer_edge.listen --input talk.wav --json\n"
               "  robot_asr | python -m cmer_edge.listen --asr external   # JSON lines {\"text\", \"start_s\", \"end_s\"}")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, help="audio file instead of the microphone (any rate/channels)")
    src.add_argument("--mic", default=None, help="input device name (substring) or index")
    src.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    p.add_argument("--realtime", action="store_true",
                   help="with --input: pace the file in real time (then, like a microphone, audio is dropped "
                        "when inference falls behind; without it nothing is dropped)")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the embedded edge bundle)")
    p.add_argument("--asr", choices=("whisper", "external", "none"), default="whisper",
                   help="whisper: on-device ASR; external: JSON lines / text lines on stdin; none: audio only")
    p.add_argument("--asr-model", default="tiny.en", help="faster-whisper model id or path")
    p.add_argument("--window", type=window_arg, default=None, help="dialogue context in utterances (default: bundle's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device of the head")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto",
                   help="encoder backend")
    p.add_argument("--threads", type=threads_arg, default=2, help="CPU threads, 1-64")
    p.add_argument("--max-seconds", type=seconds_arg, default=None, help="stop after this much audio")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


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
                                  backend=args.backend, threads=args.threads)
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


def _summary(recognizer, source) -> dict:
    from dataclasses import asdict

    stats = dict(asdict(recognizer.stats), **{f"source_{k}": v for k, v in asdict(source.stats).items()})
    if recognizer.external_text is not None:
        stats.update({f"text_{k}": v for k, v in asdict(recognizer.external_text.stats).items()})
    return stats


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if args.list_devices:
        return list_devices()
    if args.realtime and args.input is None:
        raise UserError("--realtime needs --input (a microphone is always real time)")
    try:  # output is valid UTF-8 whatever the locale (a C locale would make a non-ASCII transcript fatal)
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    except (AttributeError, ValueError, OSError):
        pass  # not a TextIOWrapper (a test's capture, an embedding program's stream): leave it
    from cmer_edge.audio.devices import NoInputDeviceError

    try:
        source = open_source(args)
    except NoInputDeviceError as exc:
        raise UserError(f"{exc}\nuse --input file.wav on machines without a microphone") from exc
    try:
        recognizer = open_recognizer(args)
    except BaseException:
        source.close()
        raise
    if args.asr == "external":
        if recognizer.external_text is None:
            log.warning("--asr external: the bundle uses no text (or text is off); stdin is not read")
        else:
            recognizer.external_text.start_reader(getattr(sys.stdin, "buffer", sys.stdin))
    code = 0
    events = recognizer.stream(source)
    try:
        for event in events:
            print(event.to_json() if args.json else event.console_line(), flush=True)
    except KeyboardInterrupt:
        code = 130
    finally:
        events.close()
        recognizer.close()
        stats = _summary(recognizer, source)
        print(("summary " + json.dumps(stats)) if args.json else f"summary: {stats}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
