"""training/gap_ci.py: a fusion check's gap with a paired-bootstrap interval."""

from __future__ import annotations

import numpy as np

from cmer_edge.model.config import EMOTIONS
from cmer_edge.training import gap_ci


def _write(path, labels, preds, names=None):
    names = names or [f"clip{i}.flac" for i in range(len(labels))]
    rows = ["path,speaker,label,pred,text"]
    rows += [f"{n},S/1,{EMOTIONS[y]},{EMOTIONS[p]}," for n, y, p in zip(names, labels, preds)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_gap_interval_and_the_difference_between_two_bundles(tmp_path, capsys):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 7, 140)
    wrong = truth.copy()
    wrong[:35] = (truth[:35] + 1) % 7  # a quarter of the clips wrong
    files = [_write(tmp_path / "a_both.csv", truth, truth), _write(tmp_path / "a_voice.csv", truth, wrong),
             _write(tmp_path / "b_both.csv", truth, wrong), _write(tmp_path / "b_voice.csv", truth, wrong)]
    assert gap_ci.main([*map(str, files), "--metric", "uar", "--draws", "300"]) == 0
    lines = capsys.readouterr().out.splitlines()
    point, draws = gap_ci.gap_draws(truth, [truth, wrong, wrong, wrong], "uar", 300, 0)
    assert point[0] > 15 and point[1] == 0.0
    assert np.percentile(draws[:, 0], 2.5) > 0  # a real gain is told apart from noise
    assert (draws[:, 1] == 0).all()  # the same predictions: no gap on any draw
    assert f"uar gap {point[0]:+.2f}" in lines[0] and "140 clips" in lines[0]
    assert lines[2].startswith(f"pair 2 - pair 1: {point[1] - point[0]:+.2f}")


def test_clips_are_matched_by_path_not_by_row_order(tmp_path):
    truth = np.array([0, 1, 2, 3])
    a = _write(tmp_path / "a.csv", truth, truth)
    b = _write(tmp_path / "b.csv", truth[::-1], truth[::-1], names=[f"clip{i}.flac" for i in (3, 2, 1, 0)])
    y, (pa, pb) = gap_ci.aligned([a, b])
    assert y.tolist() == [0, 1, 2, 3] and pa.tolist() == pb.tolist() == [0, 1, 2, 3]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    truth = np.array([0, 1, 2])
    a = _write(tmp_path / "a.csv", truth, truth)
    short = _write(tmp_path / "short.csv", truth[:2], truth[:2])
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,pred\nclip0.flac,happy,joy\n")
    cases = [([str(a)], "give 2 or 4 prediction files"), ([str(a), str(short)], "the files score different clips"),
             ([str(a), str(bad)], "bad.csv:2: needs columns path,label,pred"),
             ([str(a), str(tmp_path / "none.csv")], "predictions file not found"),
             ([str(a), str(a), "--draws", "5"], "--draws must be >= 100")]
    for argv, message in cases:
        assert gap_ci.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
