"""Audio in: format conversion, sources (microphone, file, array), VAD and endpointing.

- `convert`: load_audio, to_pipeline_format, resample, AudioError, PIPELINE_RATE_HZ (16 kHz)
- `blocks`: AudioBlock (fixed float32 mono 16 kHz blocks on the stream clock), SourceStats
- `source_base`: BlockSource (what every source shares; `live`: may it drop when the consumer is slow)
- `sources`: ArraySource, FileSource, and MicrophoneSource, list_input_devices, NoInputDeviceError
  imported from `microphone` (the device list travels in the error; a CLI exits 2 on it)
- `checks`: the input rules every entry point shares (shape, channels-first, dtype, scale, rate)
- `resampler`: StreamResampler (stateful, equal to scipy's resample_poly over the whole stream)
- `vad`: SileroVad (per-frame speech probability); `endpointer`: EndpointerConfig, Endpointer
- `segmenter`: Segmenter (VAD + endpointer over blocks); `utterance`: Utterance
- `channel`: Channel (gain, noise, room, band limit: a clip heard through another microphone and room;
  for training copies and robustness measurements, never in the live path)
See docs/live_audio.md. Submodules are imported on use, so `import cmer_edge.audio` stays cheap.
"""
