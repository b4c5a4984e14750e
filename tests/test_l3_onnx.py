"""ONNX export of the L3 networks (opset 17, dynamic windows) and the torch-free ONNX Runtime
extractor, against PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.ci import need, need_module

from cmer_edge.audio.convert import load_audio

torch = need_module("torch")
onnx = need_module("onnx")
need_module("onnxscript")

from cmer_edge.features.l3.extractor import TorchL3Extractor  # noqa: E402
from cmer_edge.features.l3.ort import OnnxL3Extractor  # noqa: E402
from cmer_edge.features.registry import make_audio_extractor  # noqa: E402

from helpers.l3 import EDGEL3  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def edgel3_torch(shared_dir):
    path = shared_dir / EDGEL3
    need(path.is_file(), f"EdgeL3 weights not found at {path}")
    return TorchL3Extractor.from_name("edgel3.sea.64", weights=path)


@pytest.fixture(scope="module")
def edgel3_onnx(edgel3_torch, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "edgel3.sea.64.onnx"
    report = edgel3_torch.export_onnx(path, window_counts=(1, 2, 7))
    return path, report


def test_export_parity_at_several_window_counts(edgel3_onnx):
    path, report = edgel3_onnx
    assert [c["windows"] for c in report["checks"]] == [1, 2, 7]
    for check in report["checks"]:
        assert check["window_embeddings_max_rel"] < 1e-4 and check["embedding_max_rel"] < 1e-4
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [i.name for i in model.graph.input] == ["audio"]
    assert [o.name for o in model.graph.output] == ["embedding", "window_embeddings"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic samples
    assert model.graph.output[1].type.tensor_type.shape.dim[0].dim_param == "windows"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["name"] == "edgel3.sea.64" and meta["sample_rate_hz"] == "8000"
    assert json.loads(meta["cmer_edge.spec"])["weights_sha256"]


def test_onnxruntime_extractor_equals_torch(edgel3_torch, edgel3_onnx, speech_clips):
    path, _ = edgel3_onnx
    ort_ext = make_audio_extractor("edgel3.sea.64", onnx=path, threads=1)
    assert isinstance(ort_ext, OnnxL3Extractor) and ort_ext.dim == 64
    assert ort_ext.spec() == edgel3_torch.spec()
    for clip in speech_clips[:2]:
        audio = load_audio(clip.path)
        a, b = edgel3_torch(audio), ort_ext(audio)
        assert b.shape == (64,) and b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())
    chunked = OnnxL3Extractor(path, max_windows_per_call=4)
    audio = load_audio(speech_clips[0].path)
    np.testing.assert_allclose(chunked.window_embeddings(audio), ort_ext.window_embeddings(audio), rtol=1e-5,
                               atol=1e-4)


def test_onnx_extractor_runs_without_torch(edgel3_onnx):
    path, _ = edgel3_onnx
    code = (
        "import sys, numpy as np\n"
        "from cmer_edge.features.registry import make_audio_extractor\n"
        f"ext = make_audio_extractor('edgel3.sea.64', onnx={str(path)!r}, threads=1)\n"
        "y = ext((0.1 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32))\n"
        "assert y.shape == (64,) and np.isfinite(y).all()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_onnx_extractor_refuses_wrong_files(edgel3_onnx, tmp_path):
    path, _ = edgel3_onnx
    with pytest.raises(ValueError, match="holds 'edgel3.sea.64', not 'edgel3.sea.128'"):
        make_audio_extractor("edgel3.sea.128", onnx=path)
    with pytest.raises(ValueError, match=r"drop \['hop_s'\]"):
        make_audio_extractor("edgel3.sea.64", onnx=path, hop_s=0.5)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxL3Extractor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        OnnxL3Extractor(tmp_path / "junk.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="no 'cmer_edge.spec' metadata"):
        OnnxL3Extractor(tmp_path / "bare.onnx")


@pytest.mark.slow
def test_openl3_6144_full_size_export_and_runtime(tmp_path, speech_clips):
    ext = TorchL3Extractor.from_name("l3.mel256.6144", weights="random", hop_s=0.5)
    report = ext.export_onnx(tmp_path / "l3.onnx", window_counts=(1, 2, 3))
    assert all(c["window_embeddings_max_rel"] < 1e-4 for c in report["checks"])
    ort_ext = OnnxL3Extractor(tmp_path / "l3.onnx", threads=2)
    audio = load_audio(speech_clips[2].path)
    a, b = ext(audio), ort_ext(audio)
    assert b.shape == (6144,)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())
