"""L3 network: configs and dims, OpenL3's windowing, forward shape/dtype/determinism, pooling,
chunked extraction, and the real EdgeL3 SEA-64 model on speech."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need, need_module

from cmer_edge.audio.convert import load_audio
from cmer_edge.features.l3.config import FrontendConfig, L3Config, NetworkConfig, frontend_preset, preset

torch = need_module("torch")

from cmer_edge.features.l3.extractor import TorchL3Extractor  # noqa: E402
from cmer_edge.features.l3.model import build_embedder  # noqa: E402
from helpers.l3 import EDGEL3, small_config  # noqa: E402

@pytest.fixture(scope="module")
def edgel3(shared_dir):
    path = shared_dir / EDGEL3
    need(path.is_file(), f"EdgeL3 weights not found at {path}")
    return TorchL3Extractor.from_name("edgel3.sea.64", weights=path)


def test_preset_dims_and_feature_maps():
    expected = {"l3.mel256.6144": (6144, (32, 24)), "l3.mel256.512": (512, (32, 24)),
                "l3.mel128.6144": (6144, (16, 24)), "l3.mel128.512": (512, (16, 24)),
                "edgel3.sea.64": (64, (8, 6)), "edgel3.sea.128": (128, (8, 6)),
                "edgel3.sea.256": (256, (8, 6)), "edgel3.sea.512": (512, (8, 6))}
    for name, (dim, fmap) in expected.items():
        cfg = preset(name)
        assert (cfg.dim, cfg.feature_map) == (dim, fmap), name
    assert preset("edgel3.sea.64").network.channels == (32, 64, 128, 64)
    assert small_config().dim == 2 * 3 * 8


def test_config_validation_names_the_value():
    with pytest.raises(ValueError, match="-0.1"):
        preset("l3.mel256.6144").with_options(hop_s=-0.1)
    with pytest.raises(ValueError, match="'median'"):
        preset("l3.mel256.6144").with_options(pooling="median")
    with pytest.raises(ValueError, match="does not tile the 32x24"):
        L3Config(name="x", network=NetworkConfig(embedding_pool=(5, 5)))
    with pytest.raises(ValueError, match="unknown L3 model 'l3.mel64.6144'"):
        preset("l3.mel64.6144")
    assert preset("l3.mel256.6144").with_options(frontend="kapre-0.1.4").frontend.mel_scale == "htk"


def _openl3_frames(audio: np.ndarray, frame: int, hop: int, center: bool) -> np.ndarray:
    """OpenL3's framing (openl3/core.py _preprocess_audio_batch), written independently with numpy."""
    if center:
        audio = np.r_[np.zeros(frame // 2, audio.dtype), audio]
    n = audio.size
    pad = frame - n if n < frame else -(-(n - frame) // hop) * hop - (n - frame)
    audio = np.r_[audio, np.zeros(max(pad, 0), audio.dtype)]
    count = 1 + (audio.size - frame) // hop
    return np.stack([audio[i * hop: i * hop + frame] for i in range(count)])


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("hop_s", [0.1, 0.25, 1.0])
def test_windows_equal_openl3_framing(center, hop_s):
    model = build_embedder(small_config(hop_s=hop_s, center=center))
    frame, hop = model.cfg.frontend.window_samples, model.cfg.hop_samples
    rng = np.random.default_rng(0)
    for n in (1, 100, frame // 2, frame // 2 + 1, frame - 1, frame, frame + 1, 3 * frame + 17):
        audio = rng.standard_normal(n).astype(np.float32)
        ours = model.windows(torch.from_numpy(audio)).numpy()
        ref = _openl3_frames(audio, frame, hop, center)
        assert ours.shape == ref.shape and np.array_equal(ours, ref), n
        assert model.cfg.n_windows(n) == ref.shape[0]


def test_forward_shape_dtype_determinism_and_pooling():
    model = build_embedder(small_config())
    audio = torch.from_numpy((0.1 * np.random.default_rng(1).standard_normal(20_000)).astype(np.float32))
    with torch.inference_mode():
        pooled, windows = model(audio)
        again, _ = model(audio)
        other = build_embedder(small_config(pooling="max"))
        other.load_state_dict(model.state_dict())
        pooled_max, windows_max = other(audio)
    assert windows.shape == (model.cfg.n_windows(20_000), 48) and pooled.shape == (48,)
    assert pooled.dtype == torch.float32 and torch.isfinite(windows).all()
    assert torch.equal(pooled, again)
    assert torch.allclose(pooled, windows.mean(0)) and torch.equal(pooled_max, windows.amax(0))
    assert torch.equal(windows, windows_max)
    assert not torch.allclose(windows[0], windows[-1])  # windows see different audio


@pytest.mark.parametrize("center", [True, False])
def test_chunked_extraction_equals_one_call(center):
    cfg = small_config(hop_s=0.1, center=center)
    whole = TorchL3Extractor.from_config(cfg, weights="random", max_windows_per_call=10_000)
    chunked = TorchL3Extractor(whole.model, weights_sha256=None, weights_label="random", max_windows_per_call=3)
    rng = np.random.default_rng(2)
    for seconds in (0.3, 1.55, 2.53):
        audio = (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
        a, b = whole.window_embeddings(audio), chunked.window_embeddings(audio)
        assert a.shape == b.shape and a.shape[0] > (3 if seconds > 1 else 0)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_random_weights_need_to_be_asked_for():
    with pytest.raises(ValueError, match="weights='random'"):
        TorchL3Extractor.from_name("edgel3.sea.64")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        TorchL3Extractor.from_name("edgel3.sea.64", weights="nope.h5")


def test_edgel3_real_embedding_on_speech(edgel3, speech_clips):
    assert edgel3.dim == 64 and edgel3.load_report.frontend_check is not None
    speech = [load_audio(c.path) for c in speech_clips]
    outs = [edgel3(x) for x in speech]
    for y in outs:
        assert y.shape == (64,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(outs[0], edgel3(speech[0]))
    for i in range(1, len(outs)):
        assert np.abs(outs[i] - outs[0]).max() > 0.1  # input-dependent
    silence = edgel3(np.zeros(16_000, np.float32))
    assert np.isfinite(silence).all() and np.abs(silence - outs[0]).max() > 0.1
    short = edgel3(speech[0][:1600])  # 0.1 s: one zero-padded window, as OpenL3 does
    assert short.shape == (64,) and np.isfinite(short).all()
    spec = edgel3.spec()
    assert spec["weights_sha256"] == edgel3.load_report.sha256 and spec["params"]["hop_s"] == 0.1


@pytest.mark.slow
def test_openl3_6144_full_size_forward_on_speech(speech_clips):
    ext = TorchL3Extractor.from_name("l3.mel256.6144", weights="random", hop_s=0.5)
    audio = load_audio(speech_clips[0].path)
    windows = ext.window_embeddings(audio)
    assert windows.shape == (ext.cfg.n_windows(len(audio) * 3), 6144)
    y = ext(audio)
    assert y.shape == (6144,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(y, ext(audio))
    assert frontend_preset("openl3-0.4") == ext.cfg.frontend
