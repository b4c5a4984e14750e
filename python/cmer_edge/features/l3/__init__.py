"""L3-family audio embeddings (OpenL3, EdgeL3): PyTorch network, Keras h5 converter, ONNX export,
and a torch-free ONNX Runtime extractor. Importing this package does not import torch; see
docs/l3.md for the front-end constants, the architecture and measured costs."""
