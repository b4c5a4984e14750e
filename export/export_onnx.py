#!/usr/bin/env python3
"""Export a bundle's head and encoders to ONNX: `python export/export_onnx.py BUNDLE` or
`python export/export_onnx.py --random-paper OUT`. Logic: cmer_edge.export (see --help)."""

from __future__ import annotations

from pathlib import Path

from cmer_edge.export.cli import export_main

# The shared data next to a checkout holds the real RoBERTa BPE files used by --random-paper.
SHARED_BPE = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "roberta-bpe"


def main(argv: list[str] | None = None) -> int:
    return export_main(argv, default_bpe=SHARED_BPE if SHARED_BPE.is_dir() else None)


if __name__ == "__main__":
    raise SystemExit(main())
