#!/usr/bin/env python3
"""ONNX Runtime vs PyTorch parity of a bundle's exported graphs: `python export/verify.py BUNDLE`.
Prints max abs/rel error per output and shape; exits 1 over tolerance. Logic: cmer_edge.export."""

from __future__ import annotations

from cmer_edge.export.cli import verify_main


def main(argv: list[str] | None = None) -> int:
    return verify_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
