"""audio.channel (gain, noise, room, band limit) measured on real signals, and training.channel_copies
writing a copied manifest that the manifest loader reads back."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cmer_edge.audio.channel import SR, Channel, active_level_db, add_noise, apply_gain, band_limit, reverberate


def _tone(hz: float, seconds: float = 1.0, amplitude: float = 0.1) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


def _gain_db(x: np.ndarray, y: np.ndarray) -> float:
    return 10 * np.log10((y[SR // 4:] ** 2).mean() / (x[SR // 4:] ** 2).mean())


def test_gain_scales_then_clips_at_full_scale():
    x = _tone(440)
    assert _gain_db(x, apply_gain(x, -12)) == pytest.approx(-12, abs=1e-6)
    loud = apply_gain(x, 30)
    assert np.abs(loud).max() == 1.0 and _gain_db(x, loud) < 30


@pytest.mark.parametrize("colour", ["white", "brown"])
def test_noise_sits_the_asked_snr_below_the_active_speech_level(colour):
    x = _tone(300)
    y = add_noise(x, 10, colour, np.random.default_rng(0))
    noise = y - x
    assert 10 * np.log10((noise ** 2).mean()) == pytest.approx(active_level_db(x) - 10, abs=0.5)
    with pytest.raises(ValueError, match="pink"):
        add_noise(x, 10, "pink", np.random.default_rng(0))


def test_room_keeps_length_and_power_and_smears_the_past_forward():
    x = np.zeros(SR)
    x[1000] = 1.0  # a click: the room's impulse response comes out
    y = reverberate(x, 0.4, 3.0, np.random.default_rng(1))
    assert len(y) == len(x) and (y ** 2).sum() == pytest.approx((x ** 2).sum(), rel=1e-6)
    assert np.abs(y[:1000]).max() < 1e-12  # causal (FFT round-off only)
    tail = y[1001:]
    assert (tail[: SR // 20] ** 2).sum() > 10 * (tail[SR // 5: SR // 4] ** 2).sum()  # decays


def test_telephone_band_passes_speech_frequencies_only():
    assert abs(_gain_db(_tone(1000), band_limit(_tone(1000), 300, 3400))) < 0.5
    assert _gain_db(_tone(80), band_limit(_tone(80), 300, 3400)) < -20
    assert _gain_db(_tone(7000), band_limit(_tone(7000), 300, 3400)) < -20


def test_drawn_channels_are_reproducible_and_never_a_telephone():
    draws = [Channel.drawn(np.random.default_rng(k)) for k in range(200)]
    assert Channel.drawn(np.random.default_rng(7)) == draws[7]
    assert all(c.band_hz is None and -15 <= c.gain_db <= 10 for c in draws)
    assert 0.3 < np.mean([c.rt60_s is not None for c in draws]) < 0.7
    assert 0.5 < np.mean([c.noise_colour is not None for c in draws]) < 0.8


def test_band_limits_are_drawn_last_and_never_a_telephone():
    plain = [Channel.drawn(np.random.default_rng(k)) for k in range(200)]
    banded = [Channel.drawn(np.random.default_rng(k), band_limits=True) for k in range(200)]
    assert all(b.band_hz is None or b == replace(p, band_hz=b.band_hz) for p, b in zip(plain, banded))
    bands = [b.band_hz for b in banded if b.band_hz]
    assert 0.2 < len(bands) / 200 < 0.45
    assert all(100 <= low <= 250 and 4000 <= high <= 7000 for low, high in bands)  # wider than 300-3400


def _toy_manifest(folder):
    import soundfile as sf

    from cmer_edge.testing.espeak import speak

    folder.mkdir()
    lines = ["path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"]
    for speaker in ("01", "02", "03"):
        for label, speed in (("anger", 200), ("sadness", 110)):
            name = f"{speaker}_{label}.wav"
            sf.write(folder / name, speak("Kids are talking by the door", speed_wpm=speed), SR)
            lines.append(f"{name},{label},{label},Kids are talking by the door,en,TOY,{speaker},,16000,,\n")
    (folder / "manifest.csv").write_text("".join(lines))
    return folder


def test_copies_are_new_speakers_one_channel_each_and_resumable(tmp_path):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.cli_common import UserError
    from cmer_edge.data.speech_manifest import load_manifest
    from cmer_edge.training.channel_copies import write_channel_copies

    source = _toy_manifest(tmp_path / "toy")
    out = tmp_path / "copies"
    path = write_channel_copies([source], out, exclude={"TOY/03"}, copies=2)
    clips = load_manifest(path).clips
    assert sorted({c.speaker_key for c in clips}) == ["TOY/01~ch0", "TOY/01~ch1", "TOY/02~ch0", "TOY/02~ch1"]
    assert len(clips) == 8 and {c.label for c in clips} == {"anger", "sadness"}
    assert all(c.transcript == "Kids are talking by the door" for c in clips)
    channels = json.loads((out / "channels.json").read_text())
    assert sorted(channels) == ["TOY/01~ch0", "TOY/01~ch1", "TOY/02~ch0", "TOY/02~ch1"]
    original = load_audio(source / "01_anger.wav")
    copy = load_audio(out / "TOY_01_ch0_01_anger.flac")
    assert len(copy) == len(original) and not np.allclose(copy, original, atol=1e-3)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")}
    write_channel_copies([source], out, exclude={"TOY/03"}, copies=2)  # resumed: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")} == stamps
    voices = load_manifest(write_channel_copies([source], tmp_path / "voices", exclude=set(), voice_only=True)).clips
    assert len(voices) == 6 and all(c.transcript == "" for c in voices)
    assert len(load_manifest(write_channel_copies([source], out, exclude={"TOY/03"}, copies=3)).clips) == 12
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_ch[01]_*.flac")} == stamps  # extended, not redrawn
    with pytest.raises(UserError, match="other channels"):  # never resumed into copies of another draw
        write_channel_copies([source], out, exclude={"TOY/03"}, copies=2, seed=1)


def test_excluding_every_speaker_is_one_line(tmp_path, capsys):
    from cmer_edge.training.channel_copies import main

    source = _toy_manifest(tmp_path / "toy")
    code = main(["--manifest", str(source), "--exclude-speakers", "TOY/01", "TOY/02", "TOY/03",
                 "--out", str(tmp_path / "copies")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: channel_copies: no clips left to copy (every speaker excluded?)"]
