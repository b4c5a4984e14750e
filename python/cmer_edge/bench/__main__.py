"""`python -m cmer_edge.bench <subcommand> [options]`: dispatch to one benchmark module.

Each subcommand is a module with ``main(argv: list[str] | None) -> int``; add a benchmark by adding
one line to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cmer_edge.cli_common import cli_entry

SUBCOMMANDS: dict[str, tuple[str, str]] = {  # name -> (module, one-line description)
    "head": ("cmer_edge.bench.head", "fused head: native vs PyTorch / TorchScript / ONNX Runtime, push and forward"),
    "pipeline": ("cmer_edge.bench.pipeline", "live pipeline: per-stage and end-of-utterance -> event latency, RTF"),
    "encoders": ("cmer_edge.bench.encoders", "encoders: ONNX Runtime vs PyTorch (text, L3), batch 1, MELD-length inputs"),
    "audio": ("cmer_edge.bench.extractors", "audio extractors: openSMILE, EdgeL3, OpenL3-6144 per utterance"),
    "serve": ("cmer_edge.bench.serve", "display server: event delivery latency, ten clients with one stalled"),
    "stages": ("cmer_edge.bench.audio_stages", "live audio stages: resampler, VAD, endpointer, Whisper per frame"),
}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.bench",
        description="cmer_edge benchmarks. Subcommands: "
        + "; ".join(f"{name}: {desc}" for name, (_, desc) in SUBCOMMANDS.items()),
        epilog="example: python -m cmer_edge.bench head --json   (then: python -m cmer_edge.bench head --help)",
    )
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options of the subcommand")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    module = importlib.import_module(SUBCOMMANDS[args.subcommand][0])
    return int(module.main(args.args))


if __name__ == "__main__":
    raise SystemExit(main())
