"""`python -m cmer_edge.bench head` end to end on the edge profile at a small window: every CPU
implementation and precision gets a row, and the floors and ratios are consistent (a program that
prints tables, checked for shape and arithmetic, not for timings)."""

from __future__ import annotations

import json

import pytest

from helpers.ci import need_module

need_module("torch")
need_module("onnxruntime")

from cmer_edge.bench.head import main  # noqa: E402

SMALL = ["--profiles", "edge", "--window", "4", "--batch", "2", "--steps", "4", "--rounds", "1", "--push-reps", "2",
         "--forward-reps", "1", "--threads", "1", "--bandwidth-mb", "16"]


def test_head_benchmark_rows_and_floors(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # main() sets it; restored after the test
    assert main(SMALL + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(r["impl"], r["op"], r["precision"]): r for r in report["rows"]}
    expected = {(impl, op, "fp32") for impl in ("native", "torch-eager", "torchscript", "onnxruntime")
                for op in ("push", "forward")}
    expected |= {("native", op, p) for op in ("push", "forward") for p in ("bf16", "int8")}
    expected.add(("torch-cached", "push", "fp32"))
    assert expected <= set(rows)
    for key in expected:
        assert "error" not in rows[key], rows[key]
        assert 0 < rows[key]["p50_ms"] <= rows[key]["p95_ms"]
    eager = rows[("torch-eager", "push", "fp32")]["p50_ms"]
    native = rows[("native", "push", "fp32")]
    assert native["speedup_vs_eager"] == pytest.approx(eager / native["p50_ms"])
    torch_push = [r for r in report["rows"] if r["op"] == "push" and r["impl"] in ("torch-eager", "torchscript",
                                                                                   "torch-cached")]
    fastest = min(torch_push, key=lambda r: r["p50_ms"])
    assert native["best_torch"] == fastest["impl"]
    assert native["speedup_vs_best_torch"] == pytest.approx(fastest["p50_ms"] / native["p50_ms"])

    floors = {f["precision"]: f for f in report["floors"]}
    assert floors["fp32"]["weight_bytes"] > floors["bf16"]["weight_bytes"] > floors["int8"]["weight_bytes"]
    for f in floors.values():
        assert f["floor_ms"] == max(f["bandwidth_floor_ms"], f["compute_floor_ms"]) > 0
        assert f["compute_floor_ms"] == pytest.approx(
            f["push_macs"] / report["multiply_add_rate"]["best_gmacs_per_s"] / 1e6)
    assert native["x_floor"] == pytest.approx(native["p50_ms"] / floors["fp32"]["floor_ms"])
    for p in ("bf16", "int8"):
        row = rows[("native", "push", p)]
        assert 0 < row["max_abs_dprob"] < 0.05 and row["argmax_agree"] >= 0.9


def test_head_benchmark_markdown_and_bad_arguments(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(SMALL + ["--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| edge | fp32 |" in out and "compute floor (ms)" in out and "| edge | push | native | cpu | int8 |" in out
    with pytest.raises(SystemExit):
        main(["--window", "0"])
    assert "--window: window (utterances) must be in 1..256, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--profiles", "tiny"])
    assert "unknown profiles ['tiny']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--precisions", "fp16"])
    assert "--precisions: unknown or empty ['fp16']" in capsys.readouterr().err


def test_head_benchmark_cuda_only_needs_cuda(capsys):
    from cmer_edge import _native

    if _native.cuda_available():
        pytest.skip("this machine has CUDA: --devices cuda runs (jetson/gpu_check.sh)")
    assert main(["--devices", "cuda"]) == 2
    assert "--devices cuda, but this build or machine has no usable CUDA device" in capsys.readouterr().err


# -- torch-cached: the fair PyTorch baseline must compute what the reference computes ----------------

CACHED_CONFIGS = [
    (dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12), "both"),
    (dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12, modalities="audio"),
     "audio"),
    (dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12, modalities="text"),
     "text"),
    (dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12, use_sca=False),
     "nosca"),
    (dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12, sca_layers=3), "sca3"),
    (dict(audio_dim=152, text_dim=1536, hidden=64), "edge"),
]


@pytest.mark.parametrize("overrides", [c[0] for c in CACHED_CONFIGS], ids=[c[1] for c in CACHED_CONFIGS])
@pytest.mark.parametrize("window", [1, 3, 8])
def test_torch_cached_session_matches_predict_live(overrides, window):
    import numpy as np
    import torch

    from cmer_edge.bench.head_torch_cached import TorchCachedSession
    from cmer_edge.model.config import HeadConfig
    from cmer_edge.model.protocol import predict_live
    from helpers.head import make_model, rel_error

    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=window)
    gen = torch.Generator().manual_seed(window)
    n = 12
    x_a, x_t = torch.randn(n, cfg.audio_dim, generator=gen), torch.randn(n, cfg.text_dim, generator=gen)
    present = torch.ones(n, 2)
    if cfg.modalities == "both":
        present[1::4, 0] = 0
        present[3::4, 1] = 0
    with torch.no_grad():
        ref = predict_live(model, x_a, x_t, window, present).numpy()
    session = TorchCachedSession(model, window)
    got = []
    for i in range(n):
        a = x_a[i].numpy() if present[i, 0] and cfg.uses_audio else None
        t = x_t[i].numpy() if present[i, 1] and cfg.uses_text else None
        session.push(a, t)
        got.append(session.logits.numpy().copy())
    assert rel_error(np.stack(got), ref) <= 1e-5
