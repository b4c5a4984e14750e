"""`python -m cmer_edge`: version, build and runtime info, and the available subcommands."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from cmer_edge import __version__

SUBCOMMANDS = {
    "listen": "live recognition from the microphone or a file (--input file.wav)",
    "serve": "live recognition plus a local display page and event stream (http://127.0.0.1:8765/)",
    "finetune": "fine-tune a text encoder on MELD utterances (the paper's first step)",
    "extract": "corpus -> feature store (openSMILE, L3, text encoder)",
    "train": "train the CM-RoBERTa head on a feature store",
    "evaluate": "weighted F1 tables, confusion matrix, predictions CSV",
    "bench": "benchmarks: head, pipeline, encoders",
}


def collect_info() -> dict:
    """Everything `python -m cmer_edge` reports, as a dict (also printed with --json)."""
    info: dict = {"version": __version__, "python": sys.version.split()[0]}
    try:
        from cmer_edge import _native
    except ImportError as exc:  # a broken or missing build must still be reported, not crash
        info["native"] = {"error": f"cmer_edge._native failed to import: {exc}"}
    else:
        info["native"] = dict(_native.build_info(), cuda_available=_native.cuda_available())
    from cmer_edge.runtime.backends import backend_availability

    info["backends"] = backend_availability()
    info["subcommands"] = {
        name: desc for name, desc in SUBCOMMANDS.items()
        if importlib.util.find_spec(f"cmer_edge.{name}") is not None
    }
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge",
        description="cmer_edge: version, build info and subcommands.",
        epilog="example: python -m cmer_edge --json",
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
    print("subcommands (python -m cmer_edge.<name>):")
    for name, desc in info["subcommands"].items():
        print(f"  {name:10s} {desc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
