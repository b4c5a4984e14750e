"""`python -m cmer_edge [COMMAND [ARGS]]`: without a command, version, build and runtime info and
the list of commands; with one, that command (`python -m cmer_edge train --help`). The commands are
listed in `cmer_edge.commands`; each also runs as `python -m <its module>`."""

from __future__ import annotations

import argparse
import json
import sys

from cmer_edge._version import __version__
from cmer_edge.commands import COMMANDS, resolve
from cmer_edge.runtime.backends import backend_availability


def collect_info() -> dict:
    """Everything `python -m cmer_edge` reports, as a dict (also printed with --json)."""
    info: dict = {"version": __version__, "python": sys.version.split()[0]}
    try:  # our compiled core, imported here so that a broken or missing build is reported, not a crash
        from cmer_edge import _native
    except ImportError as exc:
        info["native"] = {"error": f"cmer_edge._native failed to import: {exc}"}
    else:
        info["native"] = dict(_native.build_info(), cuda_available=_native.cuda_available())
    info["backends"] = backend_availability()
    info["subcommands"] = {name: desc for name, (_, desc) in COMMANDS.items()}
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return int(resolve(argv[0])(argv[1:]) or 0)
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="cmer_edge: version, build info and commands.\n\ncommands:\n"
        + "\n".join(f"  {name:13s} {desc}" for name, (_, desc) in COMMANDS.items()),
        epilog="example: python -m cmer_edge --json   |   python -m cmer_edge listen --input dialogue.wav",
    )
    parser.add_argument("--json", action="store_true", help="print the info as one JSON object")
    args = parser.parse_args(argv)
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"cmer_edge {info['version']} (Python {info['python']})")
    for key, value in info["native"].items():
        print(f"  {key:15s} {value}")
    print("encoder backends (auto picks TensorRT -> ONNX Runtime -> PyTorch):")
    for name, state in info["backends"].items():
        if isinstance(state, dict):
            detail = state.get("version") or state.get("reason", "")
            print(f"  {name:15s} {'yes' if state.get('available') else 'no ':3s} {detail}")
    print("subcommands (python -m cmer_edge <command> --help):")
    for name, desc in info["subcommands"].items():
        print(f"  {name:13s} {desc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
