"""Feature store (resume, specs) and a short real training run through the train CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.ci import need_module
from helpers.toy_store import make_store

from cmer_edge.features.store import FeatureStore, StoreError


def test_store_resumes_and_refuses_incomplete(tmp_path):
    store = FeatureStore.open(tmp_path / "s", create=True, corpus="toy")
    store.set_index("train", [{"dialogue_id": 0, "utterance_id": i, "label": 0} for i in range(5)])
    store.declare("f", {"dim": 3})
    writer = store.writer("train", "f")
    writer.put(0, np.ones(3))
    writer.put(1, None)  # unusable input
    writer.flush()
    with pytest.raises(StoreError, match="3 of 5 rows missing"):
        store.load("train", "f")
    writer = FeatureStore.open(tmp_path / "s").writer("train", "f")
    assert writer.pending().tolist() == [2, 3, 4]
    for i in writer.pending():
        writer.put(i, np.full(3, i))
    writer.flush()
    values, ok = store.load("train", "f")
    assert ok.tolist() == [True, False, True, True, True]
    assert values[0].tolist() == [1, 1, 1] and values[4].tolist() == [4, 4, 4]
    with pytest.raises(StoreError, match="another spec"):
        store.declare("f", {"dim": 4})
    with pytest.raises(StoreError, match="got 2 values"):
        writer.put(0, np.ones(2))
    with pytest.raises(StoreError, match="corpus 'toy', not 'meld'"):
        FeatureStore.open(tmp_path / "s", corpus="meld")


@pytest.mark.parametrize("protocol", ["paper", "live"])
def test_train_cli_learns_and_saves_bundles(tmp_path, protocol):
    need_module("torch")
    from cmer_edge import train
    from cmer_edge.bundle import load_bundle

    make_store(tmp_path / "store", dialogues=24)
    out = tmp_path / "runs"
    argv = ["--store", str(tmp_path / "store"), "--audio", "aud", "--text", "txt", "--out", str(out),
            "--protocol", protocol, "--window", "3", "--seeds", "0", "1", "--epochs", "8", "--patience", "8",
            "--lr", "5e-3", "--hidden", "8", "--batch", "8"]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["weighted_f1"]["mean"] > 60, summary["table"]  # chance is ~15
    run = summary["runs"][0]
    bundle = load_bundle(out / run["run"])
    history = bundle.manifest.provenance["training"]["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert bundle.manifest.protocol == protocol and bundle.head_config.audio_dim == 6
    assert set(bundle.head_tensors()) >= {"audio.mean", "text.inv_std", "classifier.3.weight"}


def test_moving_average_follows_polyak_with_a_warm_up():
    need_module("torch")
    import torch

    from cmer_edge.training.trainer import MovingAverage

    model = torch.nn.Linear(2, 1)
    model.register_buffer("scale", torch.ones(1))
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = MovingAverage(model, decay=0.9)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
            model.scale.fill_(value)
        average.update(model)
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * value
        assert torch.allclose(average.model.weight, torch.full((1, 2), expected))
        assert float(average.model.scale) == value  # buffers are copied, not averaged
    assert 0.0 < expected < 4.0 and not average.model.weight.requires_grad


def test_train_cli_with_a_moving_average_learns_and_keeps_other_weights(tmp_path):
    need_module("torch")
    import torch

    from cmer_edge import train
    from cmer_edge.bundle import load_bundle

    make_store(tmp_path / "store", dialogues=24)
    argv = ["--store", str(tmp_path / "store"), "--audio", "aud", "--text", "txt", "--seeds", "0",
            "--epochs", "6", "--patience", "6", "--lr", "5e-3", "--hidden", "8", "--batch", "8"]
    heads = {}
    for name, extra in (("plain", []), ("ema", ["--ema", "0.9"])):
        assert train.main(argv + ["--out", str(tmp_path / name)] + extra) == 0
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["test"]["weighted_f1"]["mean"] > 60, summary["table"]
        bundle = load_bundle(tmp_path / name / summary["runs"][0]["run"])
        assert bundle.manifest.provenance["training"]["config"]["ema"] == (0.9 if extra else 0.0)
        heads[name] = bundle.head_tensors()
    # the same seed and steps: only the kept (averaged) weights differ
    assert any(not torch.allclose(torch.as_tensor(heads["plain"][k]), torch.as_tensor(heads["ema"][k]))
               for k in heads["plain"])


def test_train_cli_cross_validates_over_folds(tmp_path):
    need_module("torch")
    from cmer_edge import train

    make_store(tmp_path / "store", dialogues=18)
    out = tmp_path / "cv"
    argv = ["--store", str(tmp_path / "store"), "--audio", "aud", "--modalities", "audio", "--out", str(out),
            "--cv-folds", "3", "--seeds", "0", "--epochs", "2", "--hidden", "8"]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["fold"] for r in summary["runs"]] == ["fold0", "fold1", "fold2"]
    assert "test" in summary and "dev" in summary


def test_edge_recipe_builds_a_bimodal_bundle_from_meld_and_speech(tmp_path, synthetic_meld, capsys):
    """MELD text dialogues + speech clips with transcripts (a manifest) -> one bundle the runtime loads,
    with the held-out speaker never trained on, licences and the recipe in the manifest."""
    need_module("torch")
    import soundfile as sf

    from cmer_edge.bundle import load_bundle
    from cmer_edge.testing.espeak import speak
    from cmer_edge.training import edge

    clips = tmp_path / "clips"
    clips.mkdir()
    lines = ["path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"]
    voices = {"a": ("en-us", 50), "b": ("en-gb", 70), "c": ("en-us+f3", 40), "d": ("en-gb+m3", 60)}
    for spk, (voice, pitch) in voices.items():
        for k, (label, speed) in enumerate([("anger", 190), ("sadness", 120), ("neutral", 160)] * 2):
            name = f"{spk}{k}.wav"
            sf.write(clips / name, speak("Kids are talking by the door", voice=voice, speed_wpm=speed,
                                         pitch=pitch + 5 * k), 16000)
            lines.append(f"{name},{label},{label},Kids are talking by the door,en,TOY,{spk},,16000,,\n")
            if spk == "a":  # a channel copy of speaker a (training.channel_copies): a voice, never word twins
                sf.write(clips / f"copy_{name}", 0.5 * sf.read(clips / name)[0], 16000)
                lines.append(f"copy_{name},{label},{label},Kids are talking by the door,en,TOY,a~ch0,,16000,,\n")
    # spoken MELD lines follow their MELD split: dev ones select, test ones are never used
    for split, n in (("dev", 3), ("test", 2)):
        for k in range(n):
            sf.write(clips / f"{split}{k}.wav", speak(f"I can't believe you did that {k}"), 16000)
            lines.append(f"{split}{k}.wav,joy,joy,I can't believe you did that {k},en,MELD-espeak-{split},"
                         f"espeak-en-us,,16000,,\n")
    (clips / "manifest.csv").write_text("".join(lines))
    out = tmp_path / "edge"
    assert edge.main(["--meld-dir", str(synthetic_meld.root), "--manifest", str(clips), "--audio",
                      "opensmile.eGeMAPSv02", "--holdout", "TOY/d", "--dev-speakers", "TOY/c", "--hidden", "8",
                      "--epochs", "3", "--window", "4", "--emotional-text", "1", "--neutral-min-words", "1",
                      "--out", str(out)]) == 0
    bundle = load_bundle(out / "bundle")
    assert bundle.head_config.modalities == "both" and bundle.manifest.audio_norm == "speaker"
    assert bundle.file("audio_norm").is_file() and bundle.file("onnx.text_encoder.int8").is_file()
    metrics = bundle.manifest.metrics
    assert {"meld_test_text", "holdout_k0_audio", "holdout_k10_both", "spoken_meld_dev_both",
            "clips_dev_emotional_words"} <= set(metrics)
    recipe = bundle.manifest.provenance["recipe"]
    assert list(recipe["holdout_speakers"]) == ["TOY/d"] and list(recipe["training_corpora"]) == ["MELD", "TOY"]
    assert {"same_label", "neutral_voice", "neutral_text_clips"} <= set(recipe["fusion_pairs"])
    # every neutral training clip copy (TOY/a, TOY/b: 2 x 2 clips x 3 normaliser states) gets emotional words;
    # the channel copy TOY/a~ch0 gets none
    assert recipe["fusion_pairs"]["emotional_text_clips"] == 12
    assert recipe["fusion_pairs"]["spoken_meld_dev_lines"] == 3
    assert set(bundle.manifest.licences) == {"MELD", "TOY"}
    assert (out / "cache").is_dir()  # the resumable stages
    # the voice pool's weight, fitted on the dev sets rebuilt from the command the bundle records
    from cmer_edge.runtime.head import NativeHead
    from cmer_edge.training import voice_trust

    assert voice_trust.main([str(out / "bundle"), "--out", str(tmp_path / "vt"),
                             "--json", str(tmp_path / "vt.json")]) == 0
    fit = json.loads((tmp_path / "vt.json").read_text())
    assert fit["sizes"] == {"neutral_words": 12, "emotional_words": 12, "spoken_meld": 3}
    assert [(row["voice_weight"], row["text_weight"]) for row in fit["grid"]] == [
        (w, u) for w in voice_trust.GRID for u in voice_trust.GRID]
    weighted = load_bundle(tmp_path / "vt")
    chosen = fit["chosen"]
    runtime, head = weighted.manifest.runtime, NativeHead.from_bundle(weighted)
    assert (runtime.voice_weight, runtime.text_weight) == (chosen["voice_weight"], chosen["text_weight"])
    assert (head.voice_weight, head.text_weight) == (chosen["voice_weight"], chosen["text_weight"])
    assert "grid" not in weighted.manifest.provenance["training"]["voice_trust"]  # the grid is in --json only
    steps = weighted.manifest.provenance["recipe"]["command"].split(" && ")
    assert steps[0].startswith("python -m cmer_edge.training.edge ") and steps[1].startswith(
        "python -m cmer_edge.training.voice_trust ")
    assert voice_trust.main([str(tmp_path / "vt"), "--json", str(tmp_path / "vt2.json")]) == 0  # fits again
    assert json.loads((tmp_path / "vt2.json").read_text())["chosen"] == fit["chosen"]
    assert edge.main(["--meld-dir", str(synthetic_meld.root), "--manifest", str(clips), "--audio",
                      "opensmile.eGeMAPSv02", "--holdout", "TOY/d", "--dev-speakers", "TOY/c", "--hidden", "8",
                      "--epochs", "1", "--window", "4", "--emotional-text-clips", "all",
                      "--out", str(out)]) == 0  # features from the cache
    # every acted training clip copy gets emotional words: TOY/a, TOY/b, 6 clips each x 3 normaliser states
    assert load_bundle(out / "bundle").manifest.provenance["recipe"]["fusion_pairs"]["emotional_text_clips"] == 36
    # several seeds: one member bundle each, their ensemble in OUT/bundle (scored, its command recorded);
    # a rerun reuses the finished members, and the voice weight is fitted on the ensemble
    common = ["--meld-dir", str(synthetic_meld.root), "--manifest", str(clips), "--audio", "opensmile.eGeMAPSv02",
              "--holdout", "TOY/d", "--dev-speakers", "TOY/c", "--hidden", "8", "--epochs", "1", "--window", "4",
              "--neutral-min-words", "1", "--cache", str(out / "cache"), "--out", str(tmp_path / "ens")]
    assert edge.main(common + ["--seeds", "0", "1"]) == 0
    ensemble = load_bundle(tmp_path / "ens" / "bundle")
    member = load_bundle(tmp_path / "ens" / "seed1" / "bundle")
    assert ensemble.manifest.head_members == 2 and member.manifest.head_members == 1
    assert {"meld_test_text", "holdout_k0_audio", "clips_dev_emotional_words"} <= set(ensemble.manifest.metrics)
    assert ensemble.manifest.provenance["recipe"]["command"].endswith("--seeds 0 1")
    assert member.manifest.provenance["recipe"]["command"].endswith("--seeds 1")
    sources = [m["source"] for m in ensemble.manifest.provenance["ensemble"]["members"]]
    assert [Path(s).parts[-2:] for s in sources] == [("seed0", "bundle"), ("seed1", "bundle")]
    head = member.sha256("head")
    assert edge.main(common + ["--seeds", "0", "1"]) == 0  # resumed: nothing retrained
    assert load_bundle(tmp_path / "ens" / "seed1" / "bundle").sha256("head") == head
    # a finished member of another recipe is not reused: one line, exit 2
    capsys.readouterr()
    assert edge.main(common + ["--seeds", "0", "1", "--pair", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "--pair 0.3 (now 0.5)" in err and "seed0" in err
    assert voice_trust.main([str(tmp_path / "ens" / "bundle"), "--out", str(tmp_path / "ens_vt")]) == 0
    assert NativeHead.from_bundle(tmp_path / "ens_vt").members.__len__() == 2


def test_edge_recipe_without_any_text_trains_an_audio_only_head(tmp_path):
    """Speech clips without transcripts and no MELD (leave-one-corpus-out without RAVDESS): the head
    has nothing to learn text from, so it is audio-only instead of failing to normalise text."""
    need_module("torch")
    import soundfile as sf

    from cmer_edge.bundle import load_bundle
    from cmer_edge.testing.espeak import speak
    from cmer_edge.training import edge

    clips = tmp_path / "clips"
    clips.mkdir()
    lines = ["path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"]
    for spk, voice in (("a", "en-us"), ("b", "en-gb"), ("c", "en-us+f3")):
        for k, (label, speed) in enumerate([("anger", 190), ("sadness", 120), ("neutral", 160)]):
            audio = speak("Kids are talking by the door", voice=voice, speed_wpm=speed)
            sf.write(clips / f"{spk}{k}.wav", audio, 16000)
            lines.append(f"{spk}{k}.wav,{label},{label},,en,TOY,{spk},,16000,,\n")
    (clips / "manifest.csv").write_text("".join(lines))
    assert edge.main(["--manifest", str(clips), "--audio", "opensmile.eGeMAPSv02", "--holdout", "TOY/c",
                      "--dev-speakers", "TOY/b", "--hidden", "8", "--epochs", "2", "--window", "4",
                      "--dropout", "0.5", "--weight-decay", "0.01", "--out", str(tmp_path / "edge")]) == 0
    bundle = load_bundle(tmp_path / "edge" / "bundle")
    assert bundle.head_config.modalities == "audio" and bundle.head_config.dropout == 0.5
    assert bundle.manifest.provenance["training"]["config"]["weight_decay"] == 0.01
    assert "holdout_k0_audio" in bundle.manifest.metrics


def test_edge_recipe_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from cmer_edge.training import edge

    assert edge.main(["--manifest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: manifest not found") and "Traceback" not in "\n".join(err)
    for flag, value in (("--neutral-text", "2"), ("--pair", "nan"), ("--neutral-voice", "-0.1"),
                        ("--emotional-text", "1.5"), ("--dropout", "2")):
        assert edge.main(["--manifest", str(tmp_path), "--out", str(tmp_path / "o"), flag, value]) == 2
        assert f"{flag} must be in 0..1" in capsys.readouterr().err
    for flag, value, says in (("--dropout", "1", "below 1"), ("--modality-dropout", "1", "below 1"),
                              ("--weight-decay", "-1", "finite number >= 0")):
        assert edge.main(["--manifest", str(tmp_path), "--out", str(tmp_path / "o"), flag, value]) == 2
        assert says in capsys.readouterr().err


def test_train_refuses_a_dropout_of_one_or_more_in_one_line(capsys):
    from cmer_edge import train

    for flag in ("--dropout", "--modality-dropout"):
        assert train.main(["--store", "x", "--out", "y", flag, "1"]) == 2
        assert f"{flag} must be in 0..1, below 1, got 1" in capsys.readouterr().err
