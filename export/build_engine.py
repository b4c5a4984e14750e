#!/usr/bin/env python3
"""Build TensorRT engines from a bundle's ONNX graphs, on the target device:
`python export/build_engine.py BUNDLE [--precision fp16|int8|fp32]`. Logic: cmer_edge.export."""

from __future__ import annotations

from cmer_edge.export.engine_cli import build_engine_main


def main(argv: list[str] | None = None) -> int:
    return build_engine_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
