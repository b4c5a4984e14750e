"""Issue 12 item 6: stages started in the pause before the endpointer closes an utterance.

The endpointer's candidate must be exactly the utterance it later closes (same index, times and
samples) or be superseded when speech resumes; speculation must never change an event, only when
it comes; provisional events score the audio and are replaced by the final inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge.audio.endpointer import Endpointer, EndpointerConfig
from cmer_edge.audio.sources import ArraySource

FRAME = 512


def _push_all(ep: Endpointer, probs, seed: int = 0):
    """Feed frames with the given speech probabilities; returns (closed, candidates) with the
    frame index at which each appeared."""
    rng = np.random.default_rng(seed)
    closed, candidates = [], []
    for i, p in enumerate(probs):
        for utt in ep.push(rng.normal(0, 0.1, FRAME).astype(np.float32), p):
            closed.append((i, utt))
        if (cand := ep.take_candidate()) is not None:
            candidates.append((i, cand))
    closed += [(len(probs), u) for u in ep.flush()]
    return closed, candidates


def _same(a, b) -> bool:
    return (a.index, a.start_s, a.end_s, a.truncated, a.continued) == (b.index, b.start_s, b.end_s, b.truncated,
                                                                        b.continued) and np.array_equal(a.audio, b.audio)


@pytest.mark.parametrize("post_roll_ms", [0.0, 100.0, 200.0, 400.0])
def test_the_candidate_is_the_utterance_that_closes_earlier(post_roll_ms):
    cfg = EndpointerConfig(post_roll_ms=post_roll_ms)
    ep = Endpointer(cfg, FRAME)
    probs = [0.0] * 10 + [0.9] * 30 + [0.0] * 40 + [0.9] * 20 + [0.0] * 40
    closed, candidates = _push_all(ep, probs)
    assert len(closed) == 2 and len(candidates) == 2
    silence_frames = round(cfg.min_silence_ms / 1000 / ep.frame_s)
    for (at_c, cand), (at_u, utt) in zip(candidates, closed):
        assert _same(cand, utt)
        assert at_u - at_c == silence_frames - max(round(post_roll_ms / 1000 / ep.frame_s), 1)


def test_no_candidate_when_the_post_roll_is_the_whole_closing_silence():
    ep = Endpointer(EndpointerConfig(post_roll_ms=500.0), FRAME)
    closed, candidates = _push_all(ep, [0.0] * 10 + [0.9] * 30 + [0.0] * 40)
    assert len(closed) == 1 and candidates == []


def test_speech_that_resumes_supersedes_the_candidate_and_short_blips_give_none():
    ep = Endpointer(EndpointerConfig(), FRAME)
    # a pause of 10 frames (320 ms: past the 200 ms post-roll, short of the 500 ms close) inside speech
    probs = [0.0] * 5 + [0.9] * 20 + [0.0] * 10 + [0.9] * 20 + [0.0] * 30 + [0.9] * 2 + [0.0] * 30
    closed, candidates = _push_all(ep, probs)
    assert len(closed) == 1 and len(candidates) == 2  # the 2-frame blip (< min_speech_ms) gives neither
    assert not _same(candidates[0][1], closed[0][1]) and candidates[0][1].index == closed[0][1].index
    assert _same(candidates[1][1], closed[0][1])


class _Live:
    """An array read as fast as possible but marked live, as a microphone is (speculation is for live
    sources only); the queue is long enough that nothing is dropped."""

    live = True

    def __init__(self, audio) -> None:
        self.source = ArraySource(audio, 16_000)

    def __iter__(self):
        return iter(self.source)


def test_speculation_changes_no_event_only_its_timing(tiny_bundle, dialogue_wav):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    audio = load_audio(dialogue_wav[0])
    runs = {}
    for speculate in (True, False):
        rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="external", threads=1, speculate=speculate,
                                          max_queued_utterances=8))
        for i in range(3):
            rec.supply_text(f"sentence number {i}", utterance_index=i)
        runs[speculate] = list(rec.stream(_Live(audio)))
        stats = rec.stats
        rec.close()
        assert (stats.speculative_hits == 3) == speculate and stats.provisional_events == 3
        assert stats.dropped_utterances == 0
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none", threads=1))
    list(rec.stream(ArraySource(audio, 16_000)))  # not live: no speculation
    assert rec.stats.speculative_starts == 0 and rec.stats.events == 3
    rec.close()
    on, off = runs[True], runs[False]
    assert [(e.utterance_id, e.stage, e.text) for e in on] == [(e.utterance_id, e.stage, e.text) for e in off]
    for a, b in zip(on, off):
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def test_process_gives_the_provisional_event_to_its_callback(tiny_bundle, dialogue_wav):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.audio.utterance import Utterance
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    audio = load_audio(dialogue_wav[0])[:32_000]
    utt = Utterance(audio, 0.0, 2.0, 0)
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="external", threads=1))
    seen = []
    final = rec.process(utt, text="I can't believe it", on_event=seen.append)
    assert [e.stage for e in seen] == ["provisional"] and final.stage == "final"
    assert seen[0].modalities == ("audio",) and final.modalities == ("audio", "text")
    rec.reset()
    audio_only = rec.process(utt, text="")  # empty text: audio only, no callback, same as the provisional
    assert audio_only.probs == pytest.approx(seen[0].probs, abs=1e-6)
    rec.reset()
    assert rec.process(utt, text="I can't believe it").probs == pytest.approx(final.probs, abs=1e-6)
    rec.close()
