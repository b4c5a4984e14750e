"""What every command-line tool shares: argument types with ranges, and one exit-code policy.

    from cmer_edge.cli_common import cli_entry, threads_arg, window_arg, seconds_arg

    p.add_argument("--threads", type=threads_arg, default=2)        # 1..64, else argparse's exit 2
    ...
    @cli_entry                      # main(argv) now returns the exit code below instead of raising
    def main(argv: list[str] | None = None) -> int: ...

A future `serve` uses the same two things: the argument types and `@cli_entry`.

Exit codes (docs/live_audio.md, "Bad input"):
- 0 success; 2 an expected failure (bad argument, missing or corrupt file or bundle, no device,
  no usable GPU, empty input): ONE line `error: ...` on stderr, no traceback (`-v`/`--verbose`
  in argv, or CMER_EDGE_TRACEBACK=1, adds it);
- 130 interrupted (SIGINT): the tool prints its summary first (it catches KeyboardInterrupt
  itself, or `run_cli` does), then exits 130;
- 141 when the reader of stdout went away (`listen ... | head -1`: BrokenPipeError): no message,
  no traceback, the status a Unix tool killed by SIGPIPE reports (`yes | head -1` -> 141);
- 1 an unexpected error (a bug): the traceback is printed.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import traceback
from collections.abc import Callable

from cmer_edge.runtime.validate import THREADS_RANGE, WINDOW_RANGE

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
# WINDOW_RANGE, THREADS_RANGE: the same bounds as the Python API. Window in utterances (the context
# ring grows with it: 100000 took 2.6 GB), CPU threads (512 made a run 20x slower).


class UserError(Exception):
    """An expected failure whose message is the whole story: printed as `error: ...`, exit 2."""


def int_in_range(low: int, high: int, what: str = "value") -> Callable[[str], int]:
    """argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer in {low}..{high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in {low}..{high}, got {value}")
        return value

    parse.__name__ = f"int {low}..{high}"  # what argparse names in "invalid <type> value"
    return parse


def positive_float(what: str = "value", *, allow_zero: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float > 0 (or >= 0 with allow_zero)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        if not ok:
            raise argparse.ArgumentTypeError(f"{what} must be a finite number {'>=' if allow_zero else '>'} 0, "
                                             f"got {text}")
        return value

    parse.__name__ = "positive number"
    return parse


def fraction(what: str = "value", *, below_one: bool = False) -> Callable[[str], float]:
    """argparse type: a number in [0, 1] (or [0, 1) with below_one: a dropout rate)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number in 0..1, got {text!r}") from None
        if not (0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{what} must be in 0..1{', below 1' if below_one else ''}, got {text}")
        return value

    parse.__name__ = "fraction"
    return parse


window_arg = int_in_range(*WINDOW_RANGE, what="window (utterances)")
threads_arg = int_in_range(*THREADS_RANGE, what="threads")
seconds_arg = positive_float("seconds")


def torch_threads_arg(text: str) -> int:
    """argparse type for the training CLIs: 0 (torch's default) or 1..64."""
    return 0 if text.strip() == "0" else threads_arg(text)


def check_cuda_device(device: str) -> None:
    """`--device cuda` with no usable GPU is a UserError naming why (build without CUDA, no device)."""
    if device != "cuda":
        return
    from cmer_edge import _native

    if not _native.build_info().get("cuda"):
        raise UserError("--device cuda: this cmer_edge build has no CUDA (rebuild with CMER_EDGE_CUDA=ON), "
                        "use --device cpu")
    if not _native.cuda_available():
        raise UserError("--device cuda: no usable CUDA device on this machine (driver or GPU missing), "
                        "use --device cpu")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input, not a bug. Imported lazily: a CLI's --help stays cheap."""
    types: list[type[BaseException]] = [UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                        PermissionError, MemoryError]
    for module, name in (("cmer_edge.audio.convert", "AudioError"), ("cmer_edge.audio.devices", "NoInputDeviceError"),
                         ("cmer_edge.audio.devices", "AudioDeviceError"), ("cmer_edge.bundle.errors", "BundleError"),
                         ("cmer_edge.features.store", "StoreError"), ("cmer_edge.data.meld", "MeldError"),
                         ("cmer_edge.data.emodb", "EmodbError"), ("cmer_edge.data.speech_manifest", "ManifestError"),
                         ("cmer_edge.features.split_model", "ModelAssemblyError"),
                         ("cmer_edge.features.whisper_prefix", "PrefixError")):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory (" + (text if text != "MemoryError" else "lower --window/--batch") + ")"
    return text.replace("\n", " | ")  # one line, whatever the message (a device list, a spec diff)


def _wants_traceback(argv: list[str]) -> bool:
    return any(a in ("-v", "--verbose") for a in argv) or os.environ.get("CMER_EDGE_TRACEBACK") == "1"


def _quiet_stdout_after_broken_pipe() -> None:
    # Python flushes stdout at exit; with the reader gone that raises again: point it at /dev/null.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call `main(argv)` with the exit-code policy above; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout_after_broken_pipe()
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # argparse's exit 2, or a tool's SystemExit("message")
        if isinstance(exc.code, str):
            print(f"error: {exc.code}", file=sys.stderr)
            return EXIT_USAGE
        return int(exc.code or 0)
    except user_error_types() as exc:
        if _wants_traceback(args):
            traceback.print_exc()
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def cli_entry(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Decorator: `main(argv)` runs under `run_cli`, so callers (tests, `python -m`) get the exit code."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        return run_cli(main, argv)

    return wrapper
