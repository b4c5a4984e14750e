"""Backend choice per encoder (TensorRT -> ONNX Runtime -> PyTorch) and the live encoders on it.

Real components throughout: a bundle with a random-init RoBERTa text encoder (real tokenizer), the
real EdgeL3 weights + eGeMAPS as the audio extractor, exported graphs run by onnxruntime, the
PyTorch modules they came from, espeak-ng speech. TensorRT parts are marked `tensorrt`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers.ci import need, need_module
from cmer_edge.bundle import BundleError, load_bundle
from cmer_edge.bundle.manifest import thaw
from cmer_edge.runtime.backends import BackendConfig, BackendUnavailable, backend_availability, open_runner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXTS = ["Oh my God, I can't believe it!", "okay.", "Why would you do that to me? " * 12]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, shared_dir):
    need_module("torch")
    need_module("transformers")
    from cmer_edge.export.bundle_export import export_bundle
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.export.random_models import write_random_roberta
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.model.config import HeadConfig

    weights = shared_dir / "weights/edgel3/edgel3_sea_ust_audio_emb_64.h5.gz"
    need(weights.is_file(), f"EdgeL3 weights not found at {weights}")
    path = tmp_path_factory.mktemp("backend_bundle")
    shutil.copy(weights, path / weights.name)
    audio = make_audio_extractor("opensmile.eGeMAPSv02+edgel3.sea.64", **{"edgel3.sea.64": {"weights": str(weights)}})
    write_random_roberta(path / "text_model", shared_dir / "tokenizers/roberta-bpe", layers=3, hidden=32, heads=2)
    text = {"model": "text_model", "pooling": "cls", "last_layers": 4, "max_tokens": 24, "dim": 128}
    write_random_bundle(path, HeadConfig(audio_dim=152, text_dim=128, hidden=16, ffn_dim=32, classifier_dim=32),
                        features={"text": text, "audio": audio.spec()})
    export_bundle(path, models=["text_encoder", "audio_encoder"])
    return load_bundle(path)


def test_auto_picks_onnxruntime_here_and_says_why(bundle):
    runner, choice = open_runner(bundle, "text_encoder", BackendConfig())
    assert choice.backend == runner.backend
    if importlib.util.find_spec("tensorrt") is None:
        assert choice.backend == "onnxruntime" and choice.artefact == "onnx/text_encoder.onnx"
        assert "the tensorrt package is not installed" in choice.skipped["tensorrt"]
        assert choice.summary().startswith("text_encoder: onnxruntime (onnx/text_encoder.onnx); skipped tensorrt:")
    info = backend_availability()
    assert info["onnxruntime"]["available"] and "CPUExecutionProvider" in info["onnxruntime"]["providers"]
    assert set(info) == {"tensorrt", "onnxruntime", "torch", "default"}


def test_text_encoder_onnxruntime_equals_torch(bundle):
    from cmer_edge.runtime.encoders import open_text_encoder

    ort_enc = open_text_encoder(bundle, BackendConfig(backend="onnxruntime"))
    torch_enc = open_text_encoder(bundle, BackendConfig(backend="torch"))
    assert (ort_enc.choice.backend, torch_enc.choice.backend) == ("onnxruntime", "torch")
    a, b = ort_enc.encode(TEXTS), torch_enc.encode(TEXTS)
    assert a.shape == (3, 128) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ort_enc(TEXTS[1]), a[1], atol=1e-5)  # padding in a batch changes nothing
    with pytest.raises(ValueError, match="text 0 is empty"):
        ort_enc.encode(["  "])


def test_int8_text_encoder_gives_a_line_the_same_features_in_any_call():
    """The shipped int8 encoder quantises activations per run: a line's features must not depend on
    the lines encoded with it (training caches encode many lines per call, `listen` one)."""
    from cmer_edge.bundle import default_bundle_path
    from cmer_edge.runtime.encoders import open_text_encoder

    encoder = open_text_encoder(load_bundle(default_bundle_path()), BackendConfig(backend="onnxruntime", threads=1))
    assert "int8" in encoder.choice.artefact
    texts = TEXTS + ["Fine. Whatever you say.", "No way! You got the job?"]
    alone = np.stack([encoder(t) for t in texts])
    np.testing.assert_array_equal(encoder.encode(texts), alone)
    np.testing.assert_array_equal(encoder.encode(texts[::-1]), alone[::-1])


def test_text_features_match_the_offline_extractor(bundle):
    """What the live runtime computes equals what training extracted (features/text.py)."""
    from cmer_edge.features.text import TextEncoderSpec, encode_texts, load_text_encoder
    from cmer_edge.runtime.encoders import open_text_encoder

    spec = TextEncoderSpec(model=str(bundle.path / "text_model"), pooling="cls", last_layers=4, max_tokens=24)
    encoder, tokenizer = load_text_encoder(spec)
    offline = encode_texts(encoder, tokenizer, TEXTS, max_tokens=24)
    live = open_text_encoder(bundle, BackendConfig(backend="onnxruntime")).encode(TEXTS)
    np.testing.assert_allclose(live, offline, atol=1e-4, rtol=1e-4)


def test_audio_extractor_backends_on_speech(bundle, speech_clips):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.runtime.encoders import open_audio_extractor

    samples = load_audio(speech_clips[0].path)
    ort_ext, choice = open_audio_extractor(bundle, BackendConfig(backend="onnxruntime"))
    torch_ext, _ = open_audio_extractor(bundle, BackendConfig(backend="torch"))
    assert choice.backend == "onnxruntime" and ort_ext.name == "opensmile.eGeMAPSv02+edgel3.sea.64"
    weights = str(bundle.path / "edgel3_sea_ust_audio_emb_64.h5.gz")
    offline = make_audio_extractor("opensmile.eGeMAPSv02+edgel3.sea.64", **{"edgel3.sea.64": {"weights": weights}})
    a, b, c = ort_ext(samples), torch_ext(samples), offline(samples)
    assert a.shape == (152,)
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-5)


def test_audio_encoder_graph_verifies(bundle):
    from cmer_edge.export.bundle_export import verify_bundle
    from cmer_edge.export.onnx_io import graph_io, read_metadata

    io = graph_io(bundle.file("onnx.audio_encoder"))
    assert io == {"inputs": [("audio", ["samples"])],
                  "outputs": [("embedding", [64]), ("window_embeddings", ["windows", 64])]}
    meta = read_metadata(bundle.file("onnx.audio_encoder"))
    assert meta["sample_rate_hz"] == 8000 and meta["axes"]["samples"] == [2, 16000, 20000]
    assert meta["spec"]["name"] == "edgel3.sea.64"  # features/l3's own key: OnnxL3Extractor reads it
    results = verify_bundle(bundle.path, seed=5, models=["audio_encoder"])
    assert len(results) == 8 and all(r.ok for r in results), [r.line() for r in results]


def test_forced_backends_fail_with_the_reason(bundle, monkeypatch):
    missing = r"bundle has no onnx.text_encoder.int8 graph \(export it: .*--variants int8\)"
    with pytest.raises(BackendUnavailable, match=missing):
        open_runner(bundle, "text_encoder", BackendConfig(backend="onnxruntime", onnx_precision="int8"))
    with pytest.raises(BackendUnavailable, match="bundle has no onnx.head graph"):
        open_runner(bundle, "head", BackendConfig(backend="onnxruntime"))
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match="tensorrt: the tensorrt package is not installed") as err:
            open_runner(bundle, "text_encoder", BackendConfig(backend="tensorrt"))
        assert set(err.value.reasons) == {"tensorrt"}
    monkeypatch.setenv("CMER_EDGE_BACKEND", "torch")
    assert BackendConfig.from_env().backend == "torch"
    assert BackendConfig.from_env(backend="onnxruntime").backend == "onnxruntime"
    monkeypatch.setenv("CMER_EDGE_BACKEND", "cuda")
    with pytest.raises(ValueError, match="backend must be 'auto' or one of"):
        BackendConfig.from_env()
    with pytest.raises(ValueError, match="threads must be >= 1"):
        BackendConfig(threads=0)


def test_live_encoders_run_without_torch(bundle, speech_clips):
    """The device path: ONNX Runtime encoders in a fresh interpreter never import torch."""
    code = textwrap.dedent(f"""
        import json, sys
        from cmer_edge.audio.convert import load_audio
        from cmer_edge.bundle import load_bundle
        from cmer_edge.runtime.backends import BackendConfig
        from cmer_edge.runtime.encoders import open_audio_extractor, open_text_encoder
        bundle = load_bundle({str(bundle.path)!r})
        text = open_text_encoder(bundle, BackendConfig(threads=1))
        audio, choice = open_audio_extractor(bundle, BackendConfig(threads=1))
        x_t = text("I can't believe you did that")
        x_a = audio(load_audio({str(speech_clips[1].path)!r}))
        print(json.dumps({{"text": text.choice.backend, "audio": choice.backend, "dims": [len(x_t), len(x_a)],
                          "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}}))
    """)
    env = {**os.environ, "CMER_EDGE_BACKEND": "auto"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"text": "onnxruntime", "audio": "onnxruntime", "dims": [128, 152], "torch": False,
                      "transformers": False} or importlib.util.find_spec("tensorrt") is not None


def test_l3_weights_found_in_bundle_or_by_env(bundle, tmp_path, monkeypatch, shared_dir):
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.export.registry import plan_for

    monkeypatch.delenv("CMER_EDGE_L3_WEIGHTS", raising=False)
    audio = thaw(bundle.manifest.features.audio.raw)
    other = write_random_bundle(tmp_path, bundle.head_config, features={"audio": audio})
    with pytest.raises(BundleError, match="L3 weights 'edgel3_sea_ust_audio_emb_64.h5.gz' not found"):
        plan_for(other, "audio_encoder")
    monkeypatch.setenv("CMER_EDGE_L3_WEIGHTS", str(shared_dir / "weights/edgel3"))
    assert plan_for(other, "audio_encoder").outputs[0].dims == (64,)


def test_backends_cli_reports_each_encoder(bundle, tmp_path, capsys):
    from cmer_edge.runtime.backends import main

    assert main([str(bundle.path), "--backend", "onnxruntime", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["encoders"] == {
        "text_encoder": "text_encoder: onnxruntime (onnx/text_encoder.onnx)",
        "audio_encoder": "audio_encoder: onnxruntime (onnx/audio_encoder.onnx)"}
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a bundle" in capsys.readouterr().out


def test_bad_bundles(bundle, tmp_path):
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.model.config import HeadConfig
    from cmer_edge.runtime.encoders import open_audio_extractor

    other = write_random_bundle(tmp_path, HeadConfig(audio_dim=10, text_dim=8, hidden=8, ffn_dim=8,
                                                     classifier_dim=8), features={})
    with pytest.raises(BundleError, match="no features.audio extractor spec"):
        open_audio_extractor(other)
    with pytest.raises(BackendUnavailable, match="no features.text encoder spec"):
        open_runner(other, "text_encoder", BackendConfig(backend="torch"))


@pytest.mark.tensorrt
def test_auto_prefers_a_matching_tensorrt_engine(bundle, tmp_path):
    import runpy
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "export/build_engine.py"))["main"]
    engines = tmp_path / "engines"
    assert main([str(bundle.path), "--out", str(engines)]) == 0
    runner, choice = open_runner(bundle, "text_encoder", BackendConfig(engine_dir=str(engines)))
    assert choice.backend == "tensorrt" and choice.artefact.endswith(".engine")
    from cmer_edge.runtime.encoders import open_text_encoder

    trt = open_text_encoder(bundle, BackendConfig(engine_dir=str(engines))).encode(TEXTS)
    ref = open_text_encoder(bundle, BackendConfig(backend="onnxruntime")).encode(TEXTS)
    cos = (trt * ref).sum(1) / (np.linalg.norm(trt, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.999
