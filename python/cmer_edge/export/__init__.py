"""PyTorch -> ONNX export, ONNX Runtime parity checks and TensorRT engine builds (DESIGN.md §8).

Each exportable model ("head", "text_encoder", "audio_encoder") is one small registered exporter
(`cmer_edge.export.registry`) that turns a bundle into an `ExportPlan`: the module to export, its
named inputs/outputs with symbolic dynamic axes and their (min, opt, max) ranges, a sampler of
fresh random inputs, the metadata to embed and the parity tolerance. `onnx_io` writes any plan to
ONNX, `parity` checks ONNX Runtime against PyTorch, `tensorrt_build` turns the ONNX into engines.
The CLIs are export/export_onnx.py, export/verify.py and export/build_engine.py.

Importing this package is cheap: torch is imported by the exporters only when they run.
"""
