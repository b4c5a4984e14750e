"""`python -m cmer_edge.listen`: live emotion recognition from the microphone or a file.

One line per utterance, e.g. `[00:12.4–00:14.1] joy 0.82 | "that's great" | 38 ms`, or one JSON
object per event with --json. `--events all` adds, before each final event, the provisional one scored
from the audio while the transcript is coming (`"stage": "provisional"`, same `utterance_id`); it is
the default with --json and on a terminal; `--events final` (the default when stdout is a pipe or a
file, without --json) prints the final events only. Exit codes (cmer_edge.cli_common): 0 ok, 2 bad input (bad argument,
no microphone, unreadable file, missing or corrupt bundle, no usable GPU) as one `error: ...` line,
130 interrupted (after the summary), 141 stdout closed by its reader, 1 an unexpected error.
The summary (stderr) holds the recognizer's, the source's and the external text's counters.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from cmer_edge.cli_common import UserError, cli_entry
from cmer_edge.cli_recognizer import add_recognizer_arguments, list_devices, open_recognizer, open_source

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
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--events", choices=("all", "final"), default=None,
                   help="all: provisional + final events; final: final only (default: all with --json or on a "
                        "terminal, else final)")
    return p


def events_wanted(args, stdout=None) -> str:
    if args.events is not None:
        return args.events
    stdout = sys.stdout if stdout is None else stdout
    return "all" if args.json or getattr(stdout, "isatty", lambda: False)() else "final"


def _summary(recognizer, source) -> dict:
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
    events = recognizer.stream(source, events=events_wanted(args))
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
