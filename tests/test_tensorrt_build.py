"""TensorRT build + run on a real GPU (marked `tensorrt`; skipped with a reason elsewhere).

Engines are built from real exported graphs and compared with ONNX Runtime on the same inputs.
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import numpy as np
import pytest

from helpers.ci import need_module

pytestmark = pytest.mark.tensorrt
EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, shared_dir):
    need_module("torch")
    from cmer_edge.export.bundle_export import export_bundle
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.export.random_models import write_random_roberta
    from cmer_edge.model.config import HeadConfig

    path = tmp_path_factory.mktemp("trt_bundle")
    write_random_roberta(path / "text_model", shared_dir / "tokenizers/roberta-bpe", layers=3, hidden=64, heads=4)
    text = {"model": "text_model", "pooling": "cls", "last_layers": 4, "max_tokens": 64, "dim": 256}
    write_random_bundle(path, HeadConfig(audio_dim=40, text_dim=256, hidden=32, ffn_dim=64, classifier_dim=32),
                        features={"text": text})
    export_bundle(path, models=["head", "text_encoder"])
    return path


def ort_and_engine(bundle: Path, model: str, engine_path: Path, sizes: list[dict[str, int]]):
    from cmer_edge.export.parity import ort_session
    from cmer_edge.export.registry import plan_for
    from cmer_edge.bundle import load_bundle
    from cmer_edge.backends.tensorrt_engine import TensorRTEngine

    b = load_bundle(bundle)
    plan = plan_for(b, model)
    session = ort_session(b.file(f"onnx.{model}"))
    rng = np.random.default_rng(0)
    with TensorRTEngine(engine_path, onnx_sha256=b.sha256(f"onnx.{model}")) as eng:
        for size in sizes:
            feeds = plan.sample_inputs(size, rng)
            yield session.run(None, feeds)[0], eng.run(feeds)[plan.output_names[0]]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


@pytest.mark.parametrize("precision, atol, min_cos", [("fp32", 1e-3, 0.99999), ("fp16", 5e-2, 0.999)])
def test_head_engine_matches_onnxruntime(bundle, tmp_path, precision, atol, min_cos):
    from cmer_edge.export.tensorrt_build import EngineBuildConfig, build_engine
    from cmer_edge.bundle import load_bundle

    onnx_path = load_bundle(bundle).file("onnx.head")
    engine = build_engine(onnx_path, tmp_path, "head", EngineBuildConfig(precision=precision))
    assert engine.name.startswith(f"head.{precision}.trt") and engine.name.endswith(".engine")
    assert list(tmp_path.glob("timing.trt*.cache"))
    sizes = [{"batch": 1, "utterances": 1}, {"batch": 1, "utterances": 16}, {"batch": 3, "utterances": 33}]
    for ref, out in ort_and_engine(bundle, "head", engine, sizes):
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < atol and cosine_rows(out, ref) >= min_cos


def test_text_engines_fp16_and_int8(bundle, tmp_path, shared_dir):
    main = runpy.run_path(str(EXPORT_DIR / "build_engine.py"))["main"]
    out = tmp_path / "engines"
    assert main([str(bundle), "--models", "text_encoder", "--out", str(out)]) == 0
    assert main([str(bundle), "--models", "text_encoder", "--out", str(out), "--precision", "int8",
                 "--calib-texts", str(shared_dir / "data/meld/dev_sent_emo.csv"), "--calib-limit", "64",
                 "--calib-cache", str(tmp_path / "calib.cache")]) == 0
    assert (tmp_path / "calib.cache").stat().st_size > 0
    sizes = [{"batch": 1, "tokens": 5}, {"batch": 1, "tokens": 16}, {"batch": 2, "tokens": 64}]
    for precision, min_cos in (("fp16", 0.999), ("int8", 0.95)):
        engine = next(out.glob(f"text_encoder.{precision}.trt*.engine"))
        fp = json.loads((engine.parent / (engine.name + ".json")).read_text())
        assert fp["profiles"]["input_ids"] == {"min": [1, 1], "opt": [1, 16], "max": [8, 64]}
        for ref, got in ort_and_engine(bundle, "text_encoder", engine, sizes):
            assert cosine_rows(got, ref) >= min_cos


def test_engine_refuses_mismatch_and_bad_shapes(bundle, tmp_path):
    from cmer_edge.export.tensorrt_build import EngineBuildConfig, build_engine
    from cmer_edge.bundle import load_bundle
    from cmer_edge.backends.engine_fingerprint import EngineMismatchError, fingerprint_path
    from cmer_edge.backends.tensorrt_engine import TensorRTEngine

    engine = build_engine(load_bundle(bundle).file("onnx.head"), tmp_path, "head", EngineBuildConfig(precision="fp32"))
    with TensorRTEngine(engine) as eng:
        feeds = {"x_a": np.zeros((1, 65, 40), np.float32), "x_t": np.zeros((1, 65, 256), np.float32),
                 "lengths": np.array([65]), "present": np.ones((1, 65, 2), np.float32)}
        with pytest.raises(ValueError, match=r"x_a has shape \(1, 65, 40\), the engine's profile allows"):
            eng.run(feeds)
    fp = json.loads(fingerprint_path(engine).read_text())
    fingerprint_path(engine).write_text(json.dumps({**fp, "tensorrt_version": "9.0.0"}))
    with pytest.raises(EngineMismatchError, match="built with TensorRT 9.0.0"):
        TensorRTEngine(engine)
