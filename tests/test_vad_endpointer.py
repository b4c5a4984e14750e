"""The endpointer on synthetic speech probabilities: exact boundaries, hysteresis, pre-roll,
minimum silence and speech, the max-length split, flushing and gaps in the stream."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge.audio.endpointer import Endpointer, EndpointerConfig

FRAME = 512
FRAME_S = FRAME / 16_000

# in frames: pre-roll 2, post-roll 3, min silence 10, min speech 5, max 100 frames, split search 20
CFG = EndpointerConfig(threshold_on=0.5, threshold_off=0.3, pre_roll_ms=64, post_roll_ms=96,
                       min_silence_ms=320, min_speech_ms=160, max_utterance_s=3.2, split_search_ms=640)


def run(probs, cfg=CFG, flush=True, indices=None):
    """Frame i holds the value i everywhere, so an utterance's audio says which frames it holds."""
    ep = Endpointer(cfg, FRAME)
    out = []
    indices = range(len(probs)) if indices is None else indices
    for i, p in zip(indices, probs):
        for utt in ep.push(np.full(FRAME, i, np.float32), p, i):
            out.append((i, utt))
    if flush:
        out += [(None, u) for u in ep.flush()]
    return ep, out


def frames_of(utt):
    return utt.audio.reshape(-1, FRAME)[:, 0].astype(int).tolist()


def test_exact_boundaries_with_pre_and_post_roll():
    probs = [0.0] * 20 + [0.9] * 30 + [0.0] * 40
    ep, out = run(probs)
    assert len(out) == 1
    emitted_at, utt = out[0]
    assert emitted_at == 59  # the 10th silent frame after the last speech frame (49)
    assert frames_of(utt) == list(range(18, 53))  # 2 frames pre-roll, speech 20..49, 3 frames post-roll
    assert utt.start_s == pytest.approx(18 * FRAME_S) and utt.end_s == pytest.approx(53 * FRAME_S)
    assert len(utt.audio) == round(utt.duration_s * 16_000)
    assert (utt.index, utt.truncated, utt.continued, utt.missing_s) == (0, False, False, 0.0)


def test_hysteresis():
    # 0.4 is below threshold_on: it never opens an utterance ...
    _, out = run([0.4] * 50)
    assert out == []
    # ... but above threshold_off it keeps one open
    probs = [0.0] * 5 + [0.9] * 10 + [0.4] * 20 + [0.0] * 15
    _, out = run(probs)
    assert len(out) == 1 and frames_of(out[0][1]) == list(range(3, 38))


def test_min_silence_merges_short_pauses():
    speech, tail = [0.9] * 10, [0.0] * 12
    _, out = run([0.0] * 5 + speech + [0.0] * 9 + speech + tail)  # pause of 9 frames < 10: one utterance
    assert len(out) == 1 and frames_of(out[0][1]) == list(range(3, 37))
    _, out = run([0.0] * 5 + speech + [0.0] * 10 + speech + tail)  # 10 frames: two
    assert [frames_of(u)[0] for _, u in out] == [3, 23]
    assert [u.index for _, u in out] == [0, 1]


def test_pre_roll_never_reaches_back_past_the_previous_utterance_or_the_stream_start():
    _, out = run([0.9] * 8 + [0.0] * 10)
    assert frames_of(out[0][1])[0] == 0  # no audio before the stream started
    # previous utterance ends at frame 17 (post-roll), closes at frame 24; the next starts at 25
    _, out = run([0.0] * 5 + [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 12)
    first, second = out[0][1], out[1][1]
    assert frames_of(first)[-1] == 17
    assert frames_of(second)[0] == 23 and first.end_s <= second.start_s


def test_short_blips_are_discarded():
    ep, out = run([0.0] * 5 + [0.9] * 4 + [0.0] * 20 + [0.9] * 5 + [0.0] * 20)
    assert ep.discarded == 1 and len(out) == 1
    assert frames_of(out[0][1])[0] == 27 and out[0][1].index == 0


def test_max_length_splits_at_the_quietest_frame():
    probs = [0.0] * 5 + [0.9] * 200 + [0.0] * 15
    probs[90] = 0.35  # a dip inside the last 20 frames before the cap (frames 83..102)
    _, out = run(probs)
    utts = [u for _, u in out]
    assert [(u.truncated, u.continued) for u in utts] == [(True, False), (True, True), (False, True)]
    first = utts[0]
    assert frames_of(first) == list(range(3, 91))  # cut after the dip at frame 90
    assert first.truncated and not first.continued and out[0][0] == 102  # emitted when the cap was hit
    second = utts[1]
    assert second.start_s == pytest.approx(first.end_s)
    # no dip the second time: cut at the first frame of the search window (171..190)
    assert frames_of(second) == list(range(91, 172))
    assert frames_of(utts[2]) == list(range(172, 208))
    covered = []
    for u in utts:
        assert u.duration_s <= CFG.max_utterance_s + 1e-9
        covered += frames_of(u)
    assert covered == list(range(3, 208))  # contiguous: speech 5..204 + post-roll, nothing lost


def test_flush_closes_the_open_utterance():
    _, out = run([0.0] * 5 + [0.9] * 10 + [0.0] * 2, flush=False)
    assert out == []
    _, out = run([0.0] * 5 + [0.9] * 10 + [0.0] * 2)
    assert out[0][0] is None and frames_of(out[0][1]) == list(range(3, 17))  # post-roll cut at the last frame
    _, out = run([0.0] * 5 + [0.9] * 3)  # too short even at the end
    assert out == []


def test_gap_in_speech_is_silence_and_missing():
    probs = [0.0] * 5 + [0.9] * 10 + [0.9] * 20
    indices = list(range(15)) + list(range(40, 60))  # frames 15..39 never arrived
    ep, out = run(probs, indices=indices)
    first, second = out[0][1], out[1][1]
    assert frames_of(first) == list(range(3, 15)) + [0, 0, 0]  # post-roll: 3 missing frames, as zeros
    assert first.missing_s == pytest.approx(3 * FRAME_S)  # its post-roll is zeros for missing frames
    assert first.end_s == pytest.approx(18 * FRAME_S)
    assert frames_of(second)[0] == 40 and second.start_s == pytest.approx(40 * FRAME_S)  # no pre-roll over a gap


def test_bad_input_is_refused():
    ep = Endpointer(CFG, FRAME)
    with pytest.raises(ValueError, match="1.5"):
        ep.push(np.zeros(FRAME, np.float32), 1.5)
    with pytest.raises(ValueError, match=r"\(100,\)"):
        ep.push(np.zeros(100, np.float32), 0.1)
    ep.push(np.zeros(FRAME, np.float32), 0.1, 10)
    with pytest.raises(ValueError, match="frame_index 3 goes back"):
        ep.push(np.zeros(FRAME, np.float32), 0.1, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold_on=0.3, threshold_off=0.5), "threshold_off=0.5"),
    (dict(threshold_on=1.0), "threshold_on=1.0"),
    (dict(min_speech_ms=-1), "min_speech_ms"),
    (dict(min_silence_ms=0), "min_silence_ms"),
    (dict(post_roll_ms=600, min_silence_ms=500), "post_roll_ms"),
    (dict(max_utterance_s=1.0), "max_utterance_s"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EndpointerConfig(**kwargs)
