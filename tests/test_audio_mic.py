"""MicrophoneSource through a real PortAudio device (the virtual microphone: PulseAudio null-sink
monitor): utterances played into it are found, a too-slow consumer loses the oldest blocks
(counted, bounded), and device failures mid-stream are survived by reopening (counted)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

from cmer_edge.audio.convert import load_audio
from cmer_edge.audio.segmenter import Segmenter
from cmer_edge.testing.espeak import espeak_available, speak
from cmer_edge.testing.scenes import write_scene

from helpers.ci import need

pytestmark = pytest.mark.mic


SHORT_PHRASES = ["Where are you going?", "Stop it right now.", "That is great."]


@pytest.fixture(scope="module")
def mic_scene(tmp_path_factory):
    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    clips = [(text, speak(text, speed_wpm=180)) for text in SHORT_PHRASES]
    path = tmp_path_factory.mktemp("mic") / "scene.wav"
    truth = write_scene(path, clips, [0.3, 0.9, 0.7], sample_rate_hz=48_000, tail_s=0.2)
    return path, truth


def source_output_ids() -> list[str]:
    out = subprocess.run(["pactl", "list", "short", "source-outputs"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def test_device_listing_and_missing_device(virtual_mic):
    from cmer_edge.audio.sources import MicrophoneSource, NoInputDeviceError, list_input_devices

    devices = list_input_devices()
    assert any(d.name == virtual_mic.device for d in devices)
    assert all(d.max_input_channels >= 1 for d in devices)
    with pytest.raises(NoInputDeviceError) as info:
        MicrophoneSource("no-such-microphone")
    assert info.value.devices == devices and info.value.requested == "no-such-microphone"
    assert "'no-such-microphone' not found" in str(info.value) and virtual_mic.device in str(info.value)
    with pytest.raises(NoInputDeviceError, match="index 999"):
        MicrophoneSource(999)
    with pytest.raises(ValueError, match="channels must be in 1..32"):
        MicrophoneSource(virtual_mic.device, channels=64)


def playback_offset_s(played: np.ndarray, captured: np.ndarray) -> float:
    """Stream time at which `played` starts inside `captured` (cross-correlation peak), checking
    that the captured audio really is the played audio."""
    size = 1 << (len(played) + len(captured)).bit_length()
    xc = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(played, size)), size)
    lag = int(np.argmax(xc[: len(captured) - len(played) + 1]))
    corr = np.corrcoef(played, captured[lag:lag + len(played)])[0, 1]
    assert corr > 0.9, f"captured audio does not match the played scene (r={corr:.3f})"
    return lag / 16_000


def capture_while(source, action, seconds_after: float, deadline_s: float = 40.0):
    """Consume `source`; call `action()` once the first block arrives; stop `seconds_after` after
    `action` reports done (returns True), or at the deadline. Returns the blocks."""
    blocks, t_done, t0 = [], None, time.monotonic()
    with source:
        for block in source:
            blocks.append(block)
            if t_done is None and action(block):
                t_done = time.monotonic()
            if (t_done is not None and time.monotonic() - t_done > seconds_after) or time.monotonic() - t0 > deadline_s:
                break
    return blocks


def test_played_utterances_are_found_in_captured_audio(virtual_mic, mic_scene):
    from cmer_edge.audio.sources import MicrophoneSource

    path, truth = mic_scene
    source = MicrophoneSource(virtual_mic.device)  # device default: 44.1 kHz, 2 channels -> 16 kHz mono
    assert (source.input_rate_hz, source.channels) == (44_100, 2)
    player = []

    def play(block):
        if not player:
            player.append(virtual_mic.play(path))
        return player[0].poll() is not None

    blocks = capture_while(source, play, seconds_after=1.0)
    assert player[0].returncode == 0
    assert [b.index for b in blocks] == list(range(len(blocks)))  # nothing dropped, clock contiguous
    utts = list(Segmenter().run(blocks))
    assert len(utts) == len(truth), utts
    captured = np.concatenate([b.samples for b in blocks])
    offset_s = playback_offset_s(load_audio(path), captured)  # where the scene starts on the stream clock
    for u, t in zip(utts, truth):
        assert u.start_s <= t.start_s + offset_s + 0.05 and u.end_s >= t.end_s + offset_s - 0.05, (u, t, offset_s)
    assert source.stats.dropped_blocks == 0 and source.stats.device_errors == 0 and source.closed


def test_slow_consumer_drops_oldest_blocks_with_bounded_queue(virtual_mic):
    from cmer_edge.audio.sources import MicrophoneSource

    source = MicrophoneSource(virtual_mic.device, sample_rate_hz=16_000, channels=1, queue_blocks=8, max_seconds=3.0)
    received, t0 = [], None
    with source:
        for block in source:  # ends by itself after 3 s of stream time
            t0 = t0 or time.monotonic()
            received.append(block)
            if time.monotonic() - t0 < 2.0:
                time.sleep(0.1)  # three times slower than real time
    assert source.closed and received[-1].start_s < 3.0 <= received[-1].end_s + 0.5
    stats = source.stats
    idx = np.array([b.index for b in received])
    missing = idx[-1] + 1 - len(idx)
    assert stats.overruns >= 1 and 1 <= missing <= stats.dropped_blocks
    assert source.max_queue_depth == 8
    assert np.all(np.diff(idx) >= 1)
    assert all(b.start_s == pytest.approx(b.index * 0.032) for b in received)
    # fast again: the consumer caught up and later blocks are contiguous
    tail = idx[-10:]
    assert np.all(np.diff(tail) == 1)


def test_killed_stream_is_reopened_and_counted(virtual_mic, speech_clips):
    need(shutil.which("pacmd") is not None, "pacmd is not installed (apt-get install pulseaudio-utils)")
    from cmer_edge.audio.sources import MicrophoneSource

    source = MicrophoneSource(virtual_mic.device)
    state = {"killed": None, "player": None}

    def act(block):
        now = time.monotonic()
        if state["killed"] is None and block.index > 20:  # ~0.7 s into the stream: kill it server-side
            ids = source_output_ids()
            assert len(ids) == 1
            subprocess.run(["pacmd", "kill-source-output", ids[0]], check=True, capture_output=True)
            state["killed"] = now
        if state["player"] is None and source.stats.reopens >= 1:
            state["player"] = virtual_mic.play(speech_clips[1].path)  # audio after the reopen must be captured
        return state["player"] is not None and state["player"].poll() is not None

    t_first = []

    def act_and_time(block):
        t_first.append(time.monotonic()) if not t_first else None  # wall time of the stream clock's ~0
        return act(block)

    blocks = capture_while(source, act_and_time, seconds_after=1.0)
    stats = source.stats
    assert stats.device_errors >= 1 and stats.reopens >= 1, stats
    assert stats.lost_s > 0.5  # the reopen took PulseAudio's ~2 s start-up; the clock skipped it
    idx = [b.index for b in blocks]
    assert idx == sorted(set(idx))
    assert abs(blocks[-1].end_s - (time.monotonic() - t_first[0])) < 0.6  # the clock still follows wall time
    after = [b for b in blocks if b.start_s > blocks[0].start_s + 1.0 and b.index > 40]
    utts = list(Segmenter().run(after))
    assert len(utts) == 1 and utts[0].duration_s > 1.5


def test_vanished_device_is_reopened_with_backoff(virtual_mic):
    from cmer_edge.audio.microphone import RecoveryPolicy
    from cmer_edge.audio.sources import MicrophoneSource

    source = MicrophoneSource(virtual_mic.device, recovery=RecoveryPolicy(backoff_initial_s=0.05, backoff_max_s=0.5))
    state = {"unloaded": False, "reloaded": threading.Event()}

    def reload():
        subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=vsink", "rate=48000", "channels=1"],
                       check=True, capture_output=True)
        state["reloaded"].set()

    def act(block):
        if not state["unloaded"] and block.index > 20:
            modules = subprocess.run(["pactl", "list", "short", "modules"], capture_output=True, text=True).stdout
            sink = [line.split()[0] for line in modules.splitlines() if "module-null-sink" in line]
            subprocess.run(["pactl", "unload-module", sink[0]], check=True)  # the source is gone
            state["unloaded"] = True
            threading.Timer(3.0, reload).start()  # ... for 3 s
        return source.stats.reopens >= 1

    try:
        blocks = capture_while(source, act, seconds_after=0.5)
    finally:
        if state["unloaded"] and not state["reloaded"].wait(10):
            reload()
    stats = source.stats
    assert stats.reopens == 1 and stats.device_errors >= 3, stats  # the failure + failed reopen attempts
    assert stats.lost_s > 2.0
    assert blocks[-1].index > blocks[0].index + 60
