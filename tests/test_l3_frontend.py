"""The L3 mel front-end against independent references: librosa, numpy's FFT, and the kernels
Kapre 0.1.4 saved inside the real EdgeL3 weights file."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from helpers.ci import need, need_module

from cmer_edge.features.l3.config import FrontendConfig, frontend_preset
from cmer_edge.features.l3.mel import dft_kernels, hz_to_mel, mel_filterbank, mel_to_hz

librosa = need_module("librosa")
torch = need_module("torch")


@pytest.mark.filterwarnings("ignore:Empty filters detected")  # HTK, 256 bands, 2048 points: as in Kapre
@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("sr, n_fft, n_mels", [(48_000, 2048, 256), (48_000, 2048, 128), (8000, 1024, 64)])
def test_mel_filterbank_matches_librosa(scale, sr, n_fft, n_mels):
    ours = mel_filterbank(sr, n_fft, n_mels, scale=scale)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=scale == "htk", norm="slaney", dtype=np.float64)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    assert np.abs(ours - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_scale_round_trip_and_librosa(scale):
    f = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 24_000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(f, scale), scale), f, rtol=1e-12, atol=1e-9)
    assert np.allclose(hz_to_mel(f, scale), librosa.hz_to_mel(f, htk=scale == "htk"), rtol=1e-12)
    with pytest.raises(ValueError, match="'bark'"):
        hz_to_mel(f, "bark")


def test_dft_kernels_are_a_windowed_rfft():
    n_fft = 512
    real, imag = dft_kernels(n_fft)
    x = np.random.default_rng(0).standard_normal(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    ref = np.fft.rfft(x * window)
    assert np.allclose(real @ x, ref.real, atol=1e-9) and np.allclose(imag @ x, ref.imag, atol=1e-9)


def _librosa_reference(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """The front-end written with librosa: zero-pad as TF does, STFT, mel, dB re. max, floor."""
    left, right = cfg.pad_samples
    stft = librosa.stft(np.pad(y.astype(np.float64), (left, right)), n_fft=cfg.n_fft, hop_length=cfg.hop_samples,
                        window="hann", center=False)
    fb = librosa.filters.mel(sr=cfg.sample_rate_hz, n_fft=cfg.n_fft, n_mels=cfg.n_mels, htk=cfg.mel_scale == "htk",
                             norm="slaney", dtype=np.float64)
    if cfg.mel_input == "power_sqrt":
        mel = np.sqrt(fb @ np.abs(stft) ** 2)
    else:
        mel = fb @ np.abs(stft)
    db = librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=None)
    return np.maximum(db - db.max(), -cfg.dynamic_range_db)


@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize("preset", ["kapre-0.1.4", "openl3-0.4"])
@pytest.mark.parametrize("sr, n_fft, hop, n_mels", [(48_000, 2048, 242, 256), (48_000, 2048, 242, 128),
                                                    (8000, 1024, 160, 64)])
def test_frontend_matches_librosa_reference(speech_clips, preset, sr, n_fft, hop, n_mels):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.features.l3.model import MelFrontend

    cfg = frontend_preset(preset, sample_rate_hz=sr, n_fft=n_fft, hop_samples=hop, n_mels=n_mels)
    speech = load_audio(speech_clips[1].path, target_hz=sr)
    rng = np.random.default_rng(1)
    windows = np.stack([speech[sr // 2: sr // 2 + sr], (0.3 * rng.standard_normal(sr)),
                        np.r_[np.zeros(sr // 2), speech[: sr - sr // 2]]]).astype(np.float32)
    with torch.inference_mode():
        ours = MelFrontend(cfg)(torch.from_numpy(windows)).numpy()
    assert ours.shape == (3, 1, n_mels, cfg.n_frames)
    assert cfg.n_frames == (199 if sr == 48_000 else 50)
    for i, w in enumerate(windows):
        ref = _librosa_reference(w, cfg)
        assert ref.shape == ours[i, 0].shape
        # float32 conv-DFT vs float64 FFT: the error grows as the level drops below the window's max
        err = np.abs(ours[i, 0] - ref)
        assert err[ref > -20].max() < 2e-4
        assert err[ref > -60].max() < 1e-2
        assert err.max() < 0.5
        assert ours[i, 0].max() == 0.0 and ours[i, 0].min() >= -cfg.dynamic_range_db


def test_frontend_paddings_follow_tensorflow():
    kapre01 = frontend_preset("kapre-0.1.4")  # conv2d padding='same', 48000 samples, stride 242, width 2048
    assert kapre01.n_frames == 199 and kapre01.pad_samples == (982, 982)
    kapre03 = frontend_preset("openl3-0.4")  # tf.signal.stft pad_end=True
    assert kapre03.n_frames == 199 and kapre03.pad_samples == (0, 1964)
    edge = frontend_preset("kapre-0.1.4", sample_rate_hz=8000, n_fft=1024, hop_samples=160, n_mels=64)
    assert edge.n_frames == 50 and edge.pad_samples == (432, 432)
    with pytest.raises(ValueError, match="unknown front-end preset 'kapre-9'"):
        frontend_preset("kapre-9")


def test_frontend_constants_equal_kapre_kernels_in_edgel3_file(shared_dir):
    """Kapre 0.1.4 stored its DFT kernels and mel matrix as (non-trainable) weights in the EdgeL3 file."""
    import h5py

    from cmer_edge.features.l3.model import MelFrontend

    path = shared_dir / "weights" / "edgel3" / "edgel3_sea_ust_audio_emb_64.h5.gz"
    need(path.is_file(), f"EdgeL3 weights not found at {path}")
    with h5py.File(io.BytesIO(gzip.decompress(path.read_bytes())), "r") as f:
        g = f["model_weights/melspectrogram_1/melspectrogram_1"]
        real = g["real_kernels:0"][()][:, 0, 0, :].T
        imag = g["imag_kernels:0"][()][:, 0, 0, :].T
        mel = g["Variable:0"][()].T
    fe = MelFrontend(frontend_preset("kapre-0.1.4", sample_rate_hz=8000, n_fft=1024, hop_samples=160, n_mels=64))
    ours = fe.dft[:, 0, :].numpy()
    assert np.abs(ours[:513] - real).max() < 1e-6 and np.abs(ours[513:] - imag).max() < 1e-6
    assert np.abs(fe.mel.numpy() - mel).max() < 1e-7
    # and the other mel scale would not match: the check has teeth
    slaney = mel_filterbank(8000, 1024, 64, scale="slaney")
    assert np.abs(slaney - mel).max() > 1e-3
