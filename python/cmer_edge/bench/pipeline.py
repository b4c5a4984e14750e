"""`python -m cmer_edge.bench pipeline`: the live pipeline on generated speech, per stage and
end-of-utterance -> event, with on-device ASR (Whisper) and with external text.

Latency pass: the dialogue is paced in real time (ArraySource(realtime=True)), as a microphone
would deliver it; "total" is from the moment the endpointer closes an utterance to its event, for
the provisional event (audio + context) and the final one (with the transcript). `--speculate on
off` runs both settings of RecognizerConfig.speculate (stages started in the pause before the
endpointer closes, runtime/speculation.py) in the same run, as each other's baseline.
Throughput pass: the same audio as fast as possible; real-time factor = wall time / audio time for
the whole pipeline (VAD, ASR, features, text encoder, head).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cmer_edge.audio.convert import load_audio
from cmer_edge.audio.sources import ArraySource
from cmer_edge.bench.timing import cpu_description, load_average
from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig
from cmer_edge.testing.espeak import speak
from cmer_edge.testing.scenes import write_scene
from cmer_edge.cli_common import int_in_range, threads_arg

TEXTS = [
    "Oh my god, I can't believe you actually came back!",
    "Why would you say something like that to me?",
    "Okay. Fine. Let's just go home now.",
    "I am so tired of waiting for you every single day.",
    "That is the best news I have heard all year.",
    "Wait, what? You sold the apartment?",
    "I'm sorry, I didn't mean to hurt you.",
    "Get out of my room right now!",
]
STAGES = ("asr", "text_wait", "audio_features", "text_encoder", "head", "total")


def make_dialogue(n: int, gap_s: float = 1.2) -> tuple[np.ndarray, list]:
    import tempfile

    clips = [(TEXTS[i % len(TEXTS)], speak(TEXTS[i % len(TEXTS)], speed_wpm=150 + 10 * (i % 4), pitch=40 + 8 * (i % 5)))
             for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dialogue.wav"
        scene = write_scene(path, clips, [gap_s] * n, noise_dbfs=-60)

        return load_audio(path), scene


def run_mode(bundle: str | None, asr: str, audio: np.ndarray, scene, realtime: bool, threads: int,
             speculate: bool = True):
    # as fast as possible, every utterance is closed long before inference catches up: the live
    # policy (drop the oldest waiting utterance) would then skip work and flatter the RTF, so the
    # throughput pass queues them all
    queue = {} if realtime else {"max_queued_utterances": len(scene) + 1}
    rec = Recognizer(RecognizerConfig(bundle=bundle, asr=asr, threads=threads, text_timeout_s=0.5,
                                      speculate=speculate, **queue))
    if asr == "external":  # the robot's ASR: text for every utterance, keyed by its time span
        for s in scene:
            rec.supply_text(s.text, start_s=s.start_s, end_s=s.end_s)
    started = time.perf_counter()
    events = list(rec.stream(ArraySource(audio, 16_000, realtime=realtime)))
    wall_s = time.perf_counter() - started
    rec.close()
    return events, wall_s, rec.stats


def summarise(events, stage: str, event_stage: str = "final") -> dict | None:
    values = [e.latency_ms[stage] for e in events if stage in e.latency_ms and e.stage == event_stage]
    if not values:
        return None
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "p99_ms": float(np.percentile(values, 99)), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bench pipeline", description=__doc__.splitlines()[0],
                                epilog="example: python -m cmer_edge.bench pipeline --utterances 8 --json")
    p.add_argument("--bundle", default=None, help="bundle directory (default: the embedded edge bundle)")
    p.add_argument("--utterances", type=int_in_range(1, 1000, "utterances"), default=8)
    p.add_argument("--modes", nargs="+", choices=("external", "whisper"), default=["external", "whisper"])
    p.add_argument("--speculate", nargs="+", choices=("on", "off"), default=["on"],
                   help="speculative stage start: on, off, or both (each the other's baseline in one run)")
    p.add_argument("--threads", type=threads_arg, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    audio, scene = make_dialogue(args.utterances)
    audio_s = len(audio) / 16_000
    rows, rtf = [], {}
    for mode in args.modes:
        for speculate in args.speculate:
            on = speculate == "on"
            events, _, stats = run_mode(args.bundle, mode, audio, scene, realtime=True, threads=args.threads,
                                        speculate=on)
            for event_stage, stages in (("provisional", ("total",)), ("final", STAGES)):
                for stage in stages:
                    summary = summarise(events, stage, event_stage)
                    if summary:
                        rows.append({"mode": mode, "speculate": speculate, "event": event_stage, "stage": stage,
                                     **summary})
            key = f"{mode}/{speculate}"
            fast_events, wall_s, fast_stats = run_mode(args.bundle, mode, audio, scene, realtime=False,
                                                       threads=args.threads, speculate=on)
            finals = [e for e in events if e.stage == "final"]
            rtf[key] = {"wall_s": wall_s, "audio_s": audio_s, "rtf": wall_s / audio_s, "events": len(finals),
                        "utterances": len(scene), "dropped": stats.dropped_utterances,
                        "speculative_hits": stats.speculative_hits, "speculative_wasted": stats.speculative_wasted,
                        "fast_events": sum(e.stage == "final" for e in fast_events),
                        "fast_dropped": fast_stats.dropped_utterances}
    machine = {"cpu": cpu_description(), "load": load_average(), "threads": args.threads}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows, "rtf": rtf}, indent=2))
        return 0
    print(f"# pipeline on {machine['cpu']} ({machine['load']}), {args.threads} threads, "
          f"{len(scene)} utterances, {audio_s:.1f} s of audio")
    print("| mode | speculate | event | stage | p50 ms | p95 ms | p99 ms | n |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['speculate']} | {r['event']} | {r['stage']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
              f"| {r['p99_ms']:.1f} | {r['n']} |")
    print("\n| mode / speculate | final events / utterances (paced) | dropped (paced) | speculative hits / wasted "
          "| final events (as fast as possible) | wall s (as fast as possible) | real-time factor |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, r in rtf.items():
        print(f"| {key} | {r['events']} / {r['utterances']} | {r['dropped']} | {r['speculative_hits']} / "
              f"{r['speculative_wasted']} | {r['fast_events']} | {r['wall_s']:.2f} | {r['rtf']:.3f} |")
    return 0
