"""Live runtime: encoder backends, the native head (head.NativeHead) and the pipeline."""
