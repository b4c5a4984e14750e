"""Audio in: format conversion, sources (microphone, file, array), VAD and endpointing.

- `convert`: load_audio, to_pipeline_format, resample, AudioError, PIPELINE_RATE_HZ (16 kHz)
- `blocks`: AudioBlock (fixed float32 mono 16 kHz blocks on the stream clock), SourceStats
- `sources`: ArraySource, FileSource, MicrophoneSource (from `microphone`), list_input_devices,
  NoInputDeviceError (carries the device list; a CLI exits 2 on it)
- `resampler`: StreamResampler (stateful, equal to scipy's resample_poly over the whole stream)
- `vad`: SileroVad (per-frame speech probability); `endpointer`: EndpointerConfig, Endpointer
- `segmenter`: Segmenter (VAD + endpointer over blocks); `utterance`: Utterance
See docs/live_audio.md. Submodules are imported on use, so `import cmer_edge.audio` stays cheap.
"""
