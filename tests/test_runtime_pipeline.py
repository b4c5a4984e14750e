"""The live pipeline end to end: file / array / virtual-microphone audio -> VAD -> ASR -> features ->
native head session -> one final EmotionEvent per utterance (a provisional one first where a transcript
is to come); the CLI's error handling; no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from cmer_edge.audio.sources import ArraySource, FileSource


@pytest.fixture(scope="module")
def recognizer(tiny_bundle):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="whisper", threads=2))
    yield rec
    rec.close()


def _word_overlap(a: str, b: str) -> float:
    words = lambda s: {w.strip(".,!?'").lower() for w in s.split()}  # noqa: E731
    return len(words(a) & words(b)) / max(1, len(words(b)))


def check_events(events, scene):
    assert len(events) == len(scene), [e.console_line() for e in events]
    for event, truth in zip(events, scene):
        assert event.start_s - 0.4 <= truth.start_s and truth.end_s <= event.end_s + 0.4
        assert event.label in event.probs and event.modalities == ("audio", "text")
        assert sum(event.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert event.confidence == max(event.probs.values())
        assert _word_overlap(event.text, truth.text) >= 0.5, (event.text, truth.text)
        assert {"asr", "audio_features", "text_encoder", "head", "total"} <= set(event.latency_ms)


def finals_after_provisionals(events, n: int) -> list:
    """Checks the event order (provisional, final per utterance) and returns the final events."""
    assert [(e.utterance_id, e.stage) for e in events] == [(i, s) for i in range(n) for s in ("provisional", "final")], \
        [e.console_line() for e in events]
    for provisional, final in zip(events[::2], events[1::2]):
        assert provisional.modalities == ("audio",) and provisional.text is None
        assert sum(provisional.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert (provisional.start_s, provisional.end_s) == (final.start_s, final.end_s)
        assert provisional.latency_ms["total"] <= final.latency_ms["total"]
    return events[1::2]


def test_file_gives_a_provisional_then_a_final_event_per_utterance(recognizer, dialogue_wav):
    path, scene = dialogue_wav
    recognizer.reset()
    events = list(recognizer.stream(FileSource(path)))
    finals = finals_after_provisionals(events, len(scene))
    check_events(finals, scene)
    assert json.loads(events[0].to_json())["stage"] == "provisional" and json.loads(finals[0].to_json())["stage"] == "final"
    assert "(provisional)" in events[0].console_line() and "|" in finals[0].console_line()


def test_external_text_and_audio_only_fallback(tiny_bundle, dialogue_wav):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    path, scene = dialogue_wav
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="external", text_timeout_s=0.3))
    rec.supply_text("hello from the robot", utterance_index=0)
    rec.supply_text("the second one", start_s=scene[1].start_s, end_s=scene[1].end_s)
    events = list(rec.stream(ArraySource(load_audio(path), 16_000)))  # no text for the third
    rec.close()
    finals = finals_after_provisionals(events, 3)
    assert [e.text for e in finals] == ["hello from the robot", "the second one", None]
    assert finals[2].modalities == ("audio",) and any("no text" in n for n in finals[2].notes)
    assert finals[2].probs == pytest.approx(events[4].probs, abs=1e-6)  # no text: the final is the provisional
    assert finals[0].probs != pytest.approx(events[0].probs, abs=1e-3)  # the text changed it
    assert all(sum(e.probs.values()) == pytest.approx(1.0, abs=1e-5) for e in events)


def test_voice_pool_makes_the_final_the_pool_of_the_fused_head_and_the_provisional(tiny_bundle, dialogue_wav):
    """With a voice weight, each final event is the voice pool (model/voice_pool.py) of what the same
    recognizer without one says and of its own provisional event (the voice alone, same context)."""
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.model.voice_pool import pool_voice
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    path, _ = dialogue_wav
    runs = {}
    for weight in (0.0, 0.7):
        rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="external", text_timeout_s=0.3,
                                          voice_weight=weight))
        assert rec.head.voice_weight == weight
        for i, words in enumerate(["what a wonderful day", "I am so angry with you", "fine"]):
            rec.supply_text(words, utterance_index=i)
        runs[weight] = list(rec.stream(ArraySource(load_audio(path), 16_000)))
        rec.close()
    labels = list(runs[0.0][0].probs)
    vec = lambda e: np.array([e.probs[k] for k in labels])  # noqa: E731
    for plain, pooled in zip(runs[0.0], runs[0.7]):
        assert (plain.stage, plain.utterance_id) == (pooled.stage, pooled.utterance_id)
    for plain_final, provisional, pooled_final in zip(runs[0.0][1::2], runs[0.7][0::2], runs[0.7][1::2]):
        expect = pool_voice(vec(plain_final), vec(provisional), 0.7, labels.index("neutral"))
        np.testing.assert_allclose(vec(pooled_final), expect, atol=1e-5)
    assert any(np.abs(vec(a) - vec(b)).max() > 1e-3 for a, b in zip(runs[0.0][1::2], runs[0.7][1::2]))


def test_dialogue_context_matters_and_resets(tiny_bundle, dialogue_wav):
    """The same utterance gets other probabilities after other utterances (context), and the same
    ones again after reset()."""
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.audio.utterance import Utterance
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none"))
    audio = load_audio(dialogue_wav[0])
    utts = [Utterance(audio[i * 16000:(i + 1) * 16000], float(i), i + 1.0, i) for i in range(3)]
    first = rec.process(utts[0]).probs
    later = rec.process(utts[1]), rec.process(utts[0])
    assert later[1].probs != first
    rec.reset()
    assert rec.process(utts[0]).probs == pytest.approx(first, abs=1e-6)
    rec.close()


@pytest.mark.mic
def test_virtual_microphone_end_to_end(recognizer, virtual_mic, dialogue_wav):
    from cmer_edge.audio.microphone import MicrophoneSource

    path, scene = dialogue_wav
    recognizer.reset()
    source = MicrophoneSource(virtual_mic.device, max_seconds=scene[-1].end_s + 7.0)
    events = []
    with source:
        time.sleep(2.5)  # PulseAudio delivers the first block ~2 s after opening
        player = virtual_mic.play(path)
        events = list(recognizer.stream(source, events="final"))
        player.wait(30)
    assert len(events) == len(scene), [e.console_line() for e in events]
    for event, truth in zip(events, scene):
        assert _word_overlap(event.text, truth.text) >= 0.5, (event.text, truth.text)
        assert sum(event.probs.values()) == pytest.approx(1.0, abs=1e-5)


def _listen(*args, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    code = ("import sys, runpy; sys.argv = ['listen'] + sys.argv[1:]; "
            "from cmer_edge import listen; rc = listen.main(sys.argv[1:]); "
            "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'NO_TORCH', file=sys.stderr); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_json_events_without_torch(tiny_bundle, dialogue_wav):
    path, scene = dialogue_wav
    lines = "\n".join(json.dumps({"text": f"line {i}", "start_s": s.start_s, "end_s": s.end_s})
                      for i, s in enumerate(scene))
    done = _listen("--input", str(path), "--bundle", str(tiny_bundle), "--json", "--asr", "external",
                   stdin=lines + "\n")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # --json: provisional + final
    assert [(e["utterance_id"], e["stage"]) for e in events] == [(i, s) for i in range(3) for s in ("provisional", "final")]
    assert [e["text"] for e in events] == [None, "line 0", None, "line 1", None, "line 2"]
    assert "NO_TORCH" in done.stderr and "summary" in done.stderr


def test_cli_events_default_all_for_json_and_terminals_else_final():
    from cmer_edge.listen import build_parser, events_wanted

    class Out:
        def __init__(self, tty: bool) -> None:
            self.isatty = lambda: tty

    parse = build_parser().parse_args
    assert events_wanted(parse(["--json"]), Out(False)) == "all"
    assert events_wanted(parse([]), Out(True)) == "all"
    assert events_wanted(parse([]), Out(False)) == "final"
    assert events_wanted(parse(["--json", "--events", "final"]), Out(True)) == "final"
    assert events_wanted(parse(["--events", "all"]), Out(False)) == "all"


@pytest.mark.parametrize("case", ["missing_file", "empty_file", "corrupt_bundle", "missing_bundle", "nan_audio",
                                  "bad_voice_weight", "bad_text_weight"])
def test_cli_bad_inputs_exit_2_with_a_message(case, tiny_bundle, tmp_path):
    import shutil

    import soundfile as sf

    bundle, wav = str(tiny_bundle), tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    if case == "missing_file":
        wav = tmp_path / "nope.wav"
    elif case == "empty_file":
        wav.write_bytes(b"")
    elif case == "nan_audio":
        sf.write(wav, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    elif case == "corrupt_bundle":
        broken = tmp_path / "bundle"
        shutil.copytree(tiny_bundle, broken)
        (broken / "head.safetensors").write_bytes(b"garbage")
        bundle = str(broken)
    elif case == "missing_bundle":
        bundle = str(tmp_path / "no_bundle")
    extra = {"bad_voice_weight": ["--voice-weight", "1.5"], "bad_text_weight": ["--text-weight", "-0.1"]}.get(case, [])
    done = _listen("--input", str(wav), "--bundle", bundle, "--asr", "none", *extra)
    expected = {"missing_file": "not found", "empty_file": "", "corrupt_bundle": "corrupt",
                "missing_bundle": "not a bundle", "nan_audio": "non-finite",
                "bad_voice_weight": "--voice-weight must be in 0..1",
                "bad_text_weight": "--text-weight must be in 0..1"}[case]
    if case == "nan_audio":  # NaN samples are replaced by zeros and counted, not fatal
        assert done.returncode == 0, done.stderr
        assert '"source_nonfinite_samples": 16000' in done.stderr or "nonfinite_samples': 16000" in done.stderr
        return
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error:" in done.stderr and expected in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_without_microphone_lists_devices_and_exits_2(tiny_bundle, monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent")  # no sound server, no sound card here
    done = _listen("--mic", "no-such-device", "--bundle", str(tiny_bundle), "--asr", "none", timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--input" in done.stderr and "Traceback" not in done.stderr


def test_pipeline_benchmark_reports_every_stage_and_drops_nothing(tiny_bundle, capsys):
    from cmer_edge.bench.pipeline import main

    assert main(["--bundle", str(tiny_bundle), "--utterances", "3", "--modes", "external", "--threads", "1",
                 "--speculate", "on", "off", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for speculate in ("on", "off"):
        rows = [r for r in report["rows"] if r["mode"] == "external" and r["speculate"] == speculate]
        stages = {r["stage"]: r for r in rows if r["event"] == "final"}
        assert {"audio_features", "text_encoder", "head", "total"} <= set(stages)
        assert all(r["n"] == 3 and 0 < r["p50_ms"] <= r["p95_ms"] for k, r in stages.items() if k != "text_wait")
        provisional = [r for r in rows if r["event"] == "provisional"]
        assert [r["stage"] for r in provisional] == ["total"] and provisional[0]["n"] == 3
        rtf = report["rtf"][f"external/{speculate}"]
        # the throughput pass must process every utterance, not drop its way to a better real-time factor
        assert rtf["events"] == rtf["fast_events"] == 3 and rtf["dropped"] == rtf["fast_dropped"] == 0
        assert 0 < rtf["rtf"] < 5
    # speculation is measured in the paced pass (a live source); the fast pass reads as fast as possible
    assert report["rtf"]["external/on"]["speculative_hits"] == 3 and report["rtf"]["external/off"]["speculative_hits"] == 0
