"""One backend layer for offline features and the live runtime: runners (ONNX Runtime, TensorRT,
PyTorch) and the selection TensorRT -> ONNX Runtime -> PyTorch (`select.open_runner`). Below
`features` and `runtime`; imports only `bundle` and `model` (docs/architecture.md)."""
