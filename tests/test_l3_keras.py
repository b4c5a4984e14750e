"""Keras h5 -> torch converter: h5 files written here in Keras' exact layout with known random
weights (every tensor checked at its destination), an independent numpy forward of the network
from the Keras-layout arrays, and the real EdgeL3 weights."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from helpers.ci import need, need_module

from cmer_edge.features.l3.config import L3Config, NetworkConfig, preset

torch = need_module("torch")
h5py = need_module("h5py")

from cmer_edge.features.l3.keras_h5 import KerasWeightsError, load_keras_weights, read_h5_bytes  # noqa: E402
from cmer_edge.features.l3.model import build_embedder  # noqa: E402

from helpers.l3 import EDGEL3, small_config  # noqa: E402


# -- a Keras 2 writer for the L3 layer sequence ------------------------------------------------------
def keras_layers(net: NetworkConfig, seed: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(layer name, {weight: array}) in Keras topological order, named as Keras 2.0 auto-names them,
    including the weightless layers; random values, BN variances positive."""
    rng = np.random.default_rng(seed)
    widths = [1] + [c for c in net.channels for _ in range(2)]
    out = [("input_1", {})]
    n_bn = n_act = 1

    def bn(c):
        nonlocal n_bn
        out.append((f"batch_normalization_{n_bn}", {
            "gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
            "moving_mean": rng.normal(0, 0.5, c), "moving_variance": rng.uniform(0.5, 2.0, c)}))
        n_bn += 1

    bn(1)
    for i in range(8):
        name = "audio_embedding_layer" if i == 7 else f"conv2d_{i + 1}"
        fan_in = 9 * widths[i]
        out.append((name, {"kernel": rng.normal(0, (2 / fan_in) ** 0.5, (3, 3, widths[i], widths[i + 1])),
                           "bias": rng.normal(0, 0.05, widths[i + 1])}))
        if i < 7 or net.embedding_bn_relu:
            bn(widths[i + 1])
            out.append((f"activation_{n_act}", {}))
            n_act += 1
        if i in (1, 3, 5):
            out.append((f"max_pooling2d_{(i + 1) // 2}", {}))
    return [(name, {k: v.astype(np.float32) for k, v in w.items()}) for name, w in out]


def write_keras_h5(path, layers, *, full_model: bool) -> None:
    """`model.save` layout (model_weights/...) when full_model, else `model.save_weights` (root)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.9"
        f.attrs["backend"] = b"tensorflow"
        group = f.create_group("model_weights") if full_model else f
        if full_model:
            f.attrs["model_config"] = b'{"class_name": "Model"}'
            group.attrs["keras_version"] = b"2.0.9"
        group.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        for name, weights in layers:
            g = group.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in weights])
            for k, v in weights.items():
                g.create_dataset(f"{name}/{k}:0", data=v)


# -- an independent numpy forward from the Keras-layout arrays -------------------------------------------
def np_conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x [H, W, Cin], kernel [3, 3, Cin, Cout] (Keras) -> [H, W, Cout], zero 'same' padding."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    y = np.zeros((h, w, kernel.shape[3]))
    for dy in range(3):
        for dx in range(3):
            y += xp[dy:dy + h, dx:dx + w] @ kernel[dy, dx].astype(np.float64)
    return y + bias


def np_bn(x, w, eps=1e-3):
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) * w["gamma"] + w["beta"]


def np_maxpool(x, ph, pw):
    h, w, c = x.shape
    return x[: h // ph * ph, : w // pw * pw].reshape(h // ph, ph, w // pw, pw, c).max(axis=(1, 3))


def np_l3_forward(logmel: np.ndarray, layers, net: NetworkConfig) -> np.ndarray:
    """log-mel [n_mels, frames] -> embedding, following the Keras graph layer by layer."""
    x = logmel[:, :, None].astype(np.float64)
    weights = [w for _, w in layers if w]
    x = np_bn(x, weights[0])
    k = 1
    for i in range(8):
        x = np_conv_same(x, weights[k]["kernel"], weights[k]["bias"])
        k += 1
        if i < 7 or net.embedding_bn_relu:
            x = np.maximum(np_bn(x, weights[k]), 0.0)
            k += 1
        if i in (1, 3, 5):
            x = np_maxpool(x, 2, 2)
    return np_maxpool(x, *net.embedding_pool).reshape(-1)  # Keras Flatten: (H, W, C) order


# -- tests ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, full_model", [("l3.mel256.6144", False), ("edgel3.sea.64", True)])
def test_every_tensor_lands_where_it_should(tmp_path, name, full_model):
    """OpenL3 v0.4 release files are `save_weights` files (root layout); EdgeL3's are `model.save`."""
    cfg = preset(name)
    layers = keras_layers(cfg.network, seed=3)
    path = tmp_path / "openl3_audio_mel256_music.h5"
    write_keras_h5(path, layers, full_model=full_model)
    model = build_embedder(cfg, seed=99)
    report = load_keras_weights(model, path)
    assert report.frontend_check is None and report.keras_version == "2.0.9"
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    net = model.network
    expected = [w for _, w in layers if w]
    n_bn = 9 if cfg.network.embedding_bn_relu else 8
    assert len(report.assigned) == 8 * 2 + n_bn * 4  # 8 convs (kernel, bias) + BNs (4 each)
    for module, weights in zip(net.keras_order(), expected):
        if isinstance(module, torch.nn.Conv2d):
            assert np.array_equal(module.weight.detach().numpy(), weights["kernel"].transpose(3, 2, 0, 1))
            assert np.array_equal(module.bias.detach().numpy(), weights["bias"])
        else:
            assert np.array_equal(module.weight.detach().numpy(), weights["gamma"])
            assert np.array_equal(module.bias.detach().numpy(), weights["beta"])
            assert np.array_equal(module.running_mean.numpy(), weights["moving_mean"])
            assert np.array_equal(module.running_var.numpy(), weights["moving_variance"])
    prefix = "/model_weights" if full_model else ""
    assert report.assigned["network.convs.7.weight"] == f"{prefix}/audio_embedding_layer/audio_embedding_layer/kernel:0"
    assert report.assigned["network.bns.0.running_var"] == \
        f"{prefix}/batch_normalization_1/batch_normalization_1/moving_variance:0"
    if full_model:  # (gzip of the 19 MB OpenL3 file alone takes seconds)
        gz = tmp_path / "weights.h5.gz"
        gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
        assert load_keras_weights(build_embedder(cfg), gz).sha256 == report.sha256


def test_numpy_forward_matches_torch_after_conversion(tmp_path):
    """Small network whose final map stays 2x3 (so the flatten order is exercised too)."""
    cfg = small_config()
    layers = keras_layers(cfg.network, seed=5)
    path = tmp_path / "small.h5"
    write_keras_h5(path, layers, full_model=True)
    model = build_embedder(cfg)
    load_keras_weights(model, path)
    window = (0.2 * np.random.default_rng(6).standard_normal((1, cfg.frontend.window_samples))).astype(np.float32)
    with torch.inference_mode():
        logmel = model.frontend(torch.from_numpy(window))
        ours = model.network(logmel)[0].numpy()
        block1 = torch.relu(model.network.bns[2](model.network.convs[1](
            torch.relu(model.network.bns[1](model.network.convs[0](model.network.bns[0](logmel)))))))
    x = logmel[0, 0].numpy()
    ref = np_l3_forward(x, layers, cfg.network)
    assert ours.shape == ref.shape == (cfg.dim,)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    w = [w for _, w in layers if w]
    ref1 = np.maximum(np_bn(np_conv_same(np.maximum(np_bn(np_conv_same(np_bn(x[:, :, None], w[0]), w[1]["kernel"],
                                                                      w[1]["bias"]), w[2]), 0), w[3]["kernel"],
                                         w[3]["bias"]), w[4]), 0)
    np.testing.assert_allclose(block1[0].permute(1, 2, 0).numpy(), ref1, rtol=1e-4, atol=1e-4 * np.abs(ref1).max())


def test_mismatched_files_are_refused(tmp_path):
    cfg = preset("edgel3.sea.64")
    layers = keras_layers(cfg.network, seed=1)
    good = tmp_path / "good.h5"
    write_keras_h5(good, layers, full_model=True)
    openl3 = build_embedder(preset("l3.mel256.6144"))
    with pytest.raises(KerasWeightsError, match="does not match the network"):
        load_keras_weights(openl3, good)  # EdgeL3 has one BN more after the embedding conv
    wide = [(n, {k: (np.zeros((3, 3, 1, 33), np.float32) if n == "conv2d_1" and k == "kernel" else v)
                 for k, v in w.items()}) for n, w in layers]
    write_keras_h5(tmp_path / "wide.h5", wide, full_model=True)
    with pytest.raises(KerasWeightsError, match=r"\(3, 3, 1, 33\).*convs.0.weight"):
        load_keras_weights(build_embedder(cfg), tmp_path / "wide.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(KerasWeightsError, match="not an HDF5 file"):
        read_h5_bytes(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "keras3.h5", "w") as f:
        f.create_group("layers")
    with pytest.raises(KerasWeightsError, match="layer_names"):
        load_keras_weights(build_embedder(cfg), tmp_path / "keras3.h5")


def test_kapre_layer_is_checked_against_the_frontend(tmp_path):
    """Files from OpenL3 < 0.4 and EdgeL3 carry Kapre 0.1.4's DFT kernels and mel matrix."""
    from dataclasses import replace

    from cmer_edge.features.l3.mel import dft_kernels, mel_filterbank

    cfg = small_config()  # kapre-0.1.4 front-end: HTK mel
    fe = cfg.frontend
    real, imag = dft_kernels(fe.n_fft)
    kapre = {"real_kernels": real.T[:, None, None, :], "imag_kernels": imag.T[:, None, None, :],
             "Variable": mel_filterbank(fe.sample_rate_hz, fe.n_fft, fe.n_mels, scale="htk").T}
    layers = keras_layers(cfg.network, seed=7)
    layers.insert(1, ("melspectrogram_1", {k: v.astype(np.float32) for k, v in kapre.items()}))
    write_keras_h5(tmp_path / "old.h5", layers, full_model=True)
    report = load_keras_weights(build_embedder(cfg), tmp_path / "old.h5")
    assert max(report.frontend_check.values()) < 1e-6
    slaney = replace(cfg, frontend=replace(fe, preset="openl3-0.4", mel_scale="slaney"))
    with pytest.raises(KerasWeightsError, match="frontend='kapre-0.1.4'"):
        load_keras_weights(build_embedder(slaney), tmp_path / "old.h5")
    wider = replace(cfg, frontend=replace(fe, n_mels=48))
    with pytest.raises(KerasWeightsError, match="32 mels.*48 mels"):
        load_keras_weights(build_embedder(wider), tmp_path / "old.h5")


def test_real_edgel3_weights_load_completely_and_match_numpy(shared_dir):
    path = shared_dir / EDGEL3
    need(path.is_file(), f"EdgeL3 weights not found at {path}")
    cfg = preset("edgel3.sea.64")
    model = build_embedder(cfg, seed=123)
    report = load_keras_weights(model, path)
    n_tensors = sum(1 for n, _ in model.network.named_parameters()) + \
        sum(1 for n, _ in model.network.named_buffers() if not n.endswith("num_batches_tracked"))
    assert len(report.assigned) == n_tensors == 8 * 2 + 9 * 4
    assert max(report.frontend_check.values()) < 1e-6
    # numpy forward straight from the file's arrays (read independently of the converter)
    import io

    with h5py.File(io.BytesIO(gzip.decompress(path.read_bytes())), "r") as f:
        g = f["model_weights"]
        names = [n.decode() for n in g.attrs["layer_names"]]
        layers = [(n, {w.decode().rsplit("/", 1)[1].split(":")[0]: g[n][w.decode()][()]
                       for w in g[n].attrs["weight_names"]}) for n in names if not n.startswith("melspec")]
    from cmer_edge.testing.espeak import speak

    audio = speak("Okay, fine. Let's just go home now", sample_rate_hz=8000)[:8000].astype(np.float32)
    with torch.inference_mode():
        logmel = model.frontend(torch.from_numpy(np.pad(audio, (0, 8000 - len(audio)))[None]))
        ours = model.network(logmel)[0].numpy()
    ref = np_l3_forward(logmel[0, 0].numpy(), layers, cfg.network)
    assert ours.shape == ref.shape == (64,) and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert isinstance(L3Config.from_dict(cfg.to_dict()), L3Config) and L3Config.from_dict(cfg.to_dict()) == cfg
