"""Audio in: format conversion, sources (microphone, file, array), VAD and endpointing."""
