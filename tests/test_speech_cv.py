"""`speech_cv` end to end on a toy RAVDESS-shaped corpus: an empty cache is filled first, then the
fold's linear baseline and CM head are scored and tabled."""

from __future__ import annotations

import json

from helpers.ci import need_module


def _toy_ravdess(folder, actors=8, transcript=""):
    """`actors` actors (the default 8: fold 0 test 01-04, dev 05-06, training 07-08), three emotions each,
    real espeak-ng audio, every clip with `transcript` (default none)."""
    import soundfile as sf

    from cmer_edge.testing.espeak import speak

    folder.mkdir()
    lines = ["path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"]
    voices = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")
    for actor in range(1, actors + 1):
        for label, speed, pitch in (("anger", 200, 70), ("sadness", 110, 25), ("neutral", 160, 50)):
            name = f"{actor:02d}_{label}.wav"
            audio = speak("Dogs are sitting by the door", voice=voices[actor % 4], speed_wpm=speed, pitch=pitch)
            sf.write(folder / name, audio, 16000)
            lines.append(f"{name},{label},{label},{transcript},en,RAVDESS,{actor:02d},,16000,,\n")
    (folder / "manifest.csv").write_text("".join(lines))
    return folder


def test_speech_cv_fills_the_cache_then_scores_linear_and_head(tmp_path, capsys):
    need_module("torch")
    need_module("sklearn")
    from cmer_edge.training import speech_cv
    from cmer_edge.training.edge_data import clip_cache_file

    clips, cache = _toy_ravdess(tmp_path / "clips"), tmp_path / "cache"
    assert speech_cv.main(["--manifest", str(clips), "--cache", str(cache), "--folds", "0", "--seeds", "0", "1",
                           "--edge-args", "--hidden 8 --epochs 2 --window 4", "--out", str(tmp_path / "cv")]) == 0
    assert clip_cache_file(cache, clips).is_file()
    (row,) = json.loads((tmp_path / "cv" / "summary.json").read_text())["rows"]
    assert row["plan"] == "fold0"
    for key in ("k0", "k10", "dev_k0", "dev_k10"):
        assert 0.0 <= row["linear"][key] <= 100.0
    assert len(row["head"]["k0"]) == len(row["head"]["dev"]) == 2
    assert 0.0 <= row["ensemble"]["k0"] <= 100.0  # the two seeds' ensemble, scored as the default ships
    out = capsys.readouterr().out
    assert "| fold0 |" in out and "ensemble (a)" in out


def test_speech_cv_refuses_columns_for_the_head_in_one_line(tmp_path, capsys):
    from cmer_edge.training import speech_cv

    assert speech_cv.main(["--manifest", str(tmp_path), "--cache", str(tmp_path / "c"), "--columns", "0:88",
                           "--out", str(tmp_path / "cv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --columns is for the linear baseline only (add --linear-only)"]


def test_an_unknown_audio_feature_is_one_line(tmp_path, capsys):
    from cmer_edge.training import edge, speech_cv

    for main, extra in ((speech_cv.main, ["--cache", str(tmp_path / "cache"), "--linear-only"]), (edge.main, [])):
        assert main(["--manifest", str(tmp_path / "m.csv"), *extra, "--audio", "opensmile.eGeMAPSv02", "nope",
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: --audio: unknown audio extractor 'nope'"), err


def test_the_clip_cache_keeps_audio_when_only_the_text_features_change(tmp_path, monkeypatch):
    """Audio and transcript features are cached apart: a new text encoding re-encodes the words only,
    and the cached words are what the live encoder gives each line on its own."""
    import numpy as np

    from cmer_edge.bundle import default_bundle_path, load_bundle
    from cmer_edge.data.speech_manifest import load_manifest
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.runtime.backends import BackendConfig
    from cmer_edge.runtime.encoders import open_text_encoder
    from cmer_edge.training import edge_data

    folder = _toy_ravdess(tmp_path / "clips", actors=1, transcript="Dogs are sitting by the door")
    egemaps = make_audio_extractor("opensmile.eGeMAPSv02")
    encoder = open_text_encoder(load_bundle(default_bundle_path()), BackendConfig(backend="onnxruntime", threads=1))
    calls = {"audio": 0, "text": 0}

    class CountingExtractor:
        name, dim = egemaps.name, egemaps.dim

        def __call__(self, audio):
            calls["audio"] += 1
            return egemaps(audio)

    class CountingEncoder:
        dim = encoder.dim

        def encode(self, texts):
            calls["text"] += len(texts)
            return encoder.encode(texts)

    clips, cache_file = load_manifest(folder).clips, edge_data.clip_cache_file(tmp_path / "cache", folder)
    features = lambda: edge_data.clip_features(CountingExtractor(), CountingEncoder(), clips, egemaps.name, cache_file)
    first = features()
    assert calls == {"audio": 3, "text": 3} and first["audio_ok"].all() and first["text_ok"].all()
    np.testing.assert_array_equal(first["x_t"], np.stack([encoder("Dogs are sitting by the door")] * 3))
    features()
    assert calls == {"audio": 3, "text": 3}  # both cached
    monkeypatch.setattr(edge_data, "TEXT_FEATURES", edge_data.TEXT_FEATURES + 1)
    again = features()
    assert calls == {"audio": 3, "text": 6}  # the words again, the audio from the cache
    np.testing.assert_array_equal(again["x_a"], first["x_a"])
    np.testing.assert_array_equal(again["x_t"], first["x_t"])


def test_each_protocol_holds_out_what_it_names_and_never_tests_on_dev():
    from cmer_edge.data.speech_manifest import load_manifests
    from cmer_edge.training.speech_cv import protocol_plans
    from helpers.ci import SHARED, need

    manifests = [SHARED / "data" / c for c in ("ravdess", "savee", "emodb")]
    need(all((m / "manifest.csv").is_file() for m in manifests), "../shared/data: RAVDESS, SAVEE, EmoDB manifests")
    clips = load_manifests(manifests, check_audio=False).clips
    known = {c.speaker_key for c in clips}
    savee = protocol_plans("savee", clips)
    assert [(name, test) for name, test, _ in savee] == [("without_SAVEE/DC", ["SAVEE/DC"]),
                                                          ("without_SAVEE/JE", ["SAVEE/JE"]),
                                                          ("without_SAVEE/JK", ["SAVEE/JK"])]
    loco = protocol_plans("loco", clips)
    assert [name for name, _, _ in loco] == ["without_RAVDESS", "without_SAVEE", "without_EmoDB"]
    assert len(protocol_plans("ravdess", clips)) == 5 and len(protocol_plans("ravdess", clips, [1, 3])) == 2
    for _, test, dev in savee + loco + protocol_plans("ravdess", clips):
        assert set(test) <= known and set(dev) <= known and not set(test) & set(dev)


def test_a_cache_file_with_an_older_extra_array_still_concatenates_with_a_new_one(tmp_path):
    """A clip cache written before `speech_found` was dropped (same key) next to one written after:
    both give exactly the declared arrays, so several manifests' features concatenate (this crashed
    training.edge with KeyError when one manifest's cache was new)."""
    import numpy as np

    from cmer_edge.training.edge_data import AUDIO_FIELDS, cached

    old = tmp_path / "old.npz"
    np.savez(old, _key=np.array("k"), x_a=np.ones((2, 3), np.float32), audio_ok=np.ones(2, bool),
             speech_found=np.ones(2, bool))
    computed = []
    new = lambda: computed.append(1) or {"x_a": np.zeros((1, 3), np.float32), "audio_ok": np.zeros(1, bool)}  # noqa: E731
    parts = [cached(old, "k", AUDIO_FIELDS, new), cached(tmp_path / "new.npz", "k", AUDIO_FIELDS, new)]
    assert computed == [1] and all(sorted(p) == sorted(AUDIO_FIELDS) for p in parts)
    assert {k: np.concatenate([p[k] for p in parts]).shape for k in AUDIO_FIELDS} == {"x_a": (3, 3), "audio_ok": (3,)}
    assert cached(tmp_path / "new.npz", "k", AUDIO_FIELDS, new)["x_a"].shape == (1, 3) and computed == [1]
    np.savez(old, _key=np.array("k"), x_a=np.ones((2, 3), np.float32))  # a declared array missing: recomputed
    assert cached(old, "k", AUDIO_FIELDS, new)["x_a"].shape == (1, 3) and computed == [1, 1]
