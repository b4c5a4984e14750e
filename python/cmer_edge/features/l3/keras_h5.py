"""Load OpenL3 / EdgeL3 Keras HDF5 weights into `L3Network` (needs h5py and torch).

Reads the layout Keras 2 writes: `model.save` puts the layers under `model_weights/`, while
`model.save_weights` (the OpenL3 v0.4 release files) puts them at the root; either way the group
carries `layer_names` (topological order) and each layer group `weight_names`, whose datasets live
at `<layer>/<weight name>` (e.g. `conv2d_1/conv2d_1/kernel:0`). `.h5.gz` files are read in memory.

Layers are matched by order and kind, not by the auto-generated names (they differ between
Keras versions): the BatchNormalization and Conv2D layers must be exactly those of
`L3Network.keras_order()`, every shape must match, and nothing may be left over. A Kapre 0.1.4
`Melspectrogram` layer (EdgeL3 files, OpenL3 < 0.4 files) holds the DFT kernels and mel matrix the
network was trained with: they are compared with our front-end, which must agree (it is not loaded:
ours is computed from the same definitions, so a mismatch means a wrong config).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cmer_edge.features.l3.model import L3Embedder, L3Network, MelFrontend

log = logging.getLogger("cmer_edge")

_CONV = ("kernel", "bias")
_BN = ("gamma", "beta", "moving_mean", "moving_variance")
_KAPRE_MEL = ("real_kernels", "imag_kernels", "Variable")
_FRONTEND_ATOL = 1e-5


class KerasWeightsError(ValueError):
    """A weights file that is not a Keras h5 of the expected L3 network."""


@dataclass
class KerasLayer:
    name: str
    weights: dict[str, np.ndarray]  # short name ("kernel", "gamma", ...) -> array
    paths: dict[str, str]  # short name -> dataset path inside the file

    @property
    def kind(self) -> str:
        keys = set(self.weights)
        if keys == set(_CONV):
            return "conv"
        if keys == set(_BN):
            return "bn"
        if keys == set(_KAPRE_MEL):
            return "kapre_mel"
        return "other"


@dataclass
class LoadReport:
    path: str
    sha256: str  # of the (decompressed) h5 bytes
    keras_version: str | None
    assigned: dict[str, str] = field(default_factory=dict)  # torch tensor name -> h5 dataset path
    frontend_check: dict[str, float] | None = None  # max abs diff per Kapre constant, when present


def read_h5_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise KerasWeightsError(f"{path}: corrupt gzip stream: {exc}") from exc
    if data[:8] != b"\x89HDF\r\n\x1a\n":
        raise KerasWeightsError(f"{path}: not an HDF5 file (nor a gzip of one)")
    return data


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_layers(data: bytes, source: str = "<bytes>") -> tuple[list[KerasLayer], str | None]:
    """The layers holding weights, in the file's `layer_names` order; and the Keras version."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        group = f.get("model_weights", f)
        if "layer_names" not in group.attrs:
            raise KerasWeightsError(f"{source}: no 'layer_names' attribute: not a Keras 2 h5 weights file "
                                    "(Keras 3 '.weights.h5' files are not supported)")
        version = group.attrs.get("keras_version", f.attrs.get("keras_version"))
        layers = []
        for lname in (_text(n) for n in group.attrs["layer_names"]):
            weight_names = [_text(w) for w in group[lname].attrs.get("weight_names", [])]
            if not weight_names:
                continue
            weights, paths = {}, {}
            for wname in weight_names:
                short = wname.rsplit("/", 1)[-1].split(":", 1)[0]
                dset = group[lname][wname]
                weights[short] = np.asarray(dset[()], dtype=np.float32)
                paths[short] = dset.name
            layers.append(KerasLayer(lname, weights, paths))
    return layers, None if version is None else _text(version)


def _assign(target: torch.Tensor, value: np.ndarray, tname: str, src: str, src_shape: tuple) -> None:
    if tuple(target.shape) != value.shape:
        raise KerasWeightsError(f"{src} has shape {src_shape} (as torch {value.shape}), but {tname} needs "
                                f"{tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _check_frontend(layer: KerasLayer, frontend: MelFrontend | None) -> dict[str, float]:
    real = layer.weights["real_kernels"][:, 0, 0, :].T  # (n_fft, 1, 1, bins) -> [bins, n_fft]
    imag = layer.weights["imag_kernels"][:, 0, 0, :].T
    mel = layer.weights["Variable"].T  # (bins, n_mels) -> [n_mels, bins]
    if frontend is None:
        return {}
    ours_dft = frontend.dft[:, 0, :].numpy()
    if real.shape != (frontend.n_bins, frontend.cfg.n_fft) or mel.shape != tuple(frontend.mel.shape):
        raise KerasWeightsError(
            f"the file's Kapre front-end ({real.shape[1]}-point DFT, {mel.shape[0]} mels) does not match "
            f"this config ({frontend.cfg.n_fft}-point DFT, {frontend.cfg.n_mels} mels)")
    diffs = {"real_kernels": float(np.abs(real - ours_dft[: frontend.n_bins]).max()),
             "imag_kernels": float(np.abs(imag - ours_dft[frontend.n_bins:]).max()),
             "mel": float(np.abs(mel - frontend.mel.numpy()).max())}
    if max(diffs.values()) > _FRONTEND_ATOL:
        raise KerasWeightsError(
            f"the file's Kapre 0.1.4 front-end constants differ from this config's: {diffs} (front-end preset "
            f"{frontend.cfg.preset!r}, {frontend.cfg.mel_scale} mel scale); files with a Kapre layer were trained "
            "with frontend='kapre-0.1.4'")
    if frontend.cfg.preset != "kapre-0.1.4":
        log.warning("weights were trained with the Kapre 0.1.4 front-end; this model uses %r", frontend.cfg.preset)
    return diffs


def load_keras_weights(model: L3Embedder | L3Network, path: str | Path) -> LoadReport:
    """Fill `model` from a Keras h5[.gz]; strict (all tensors, exact shapes, nothing left over)."""
    network = model.network if isinstance(model, L3Embedder) else model
    frontend = model.frontend if isinstance(model, L3Embedder) else None
    data = read_h5_bytes(path)
    layers, version = read_keras_layers(data, str(path))
    report = LoadReport(str(path), hashlib.sha256(data).hexdigest(), version)
    kapre = [layer for layer in layers if layer.kind == "kapre_mel"]
    others = [layer for layer in layers if layer.kind == "other"]
    if others:
        raise KerasWeightsError(f"{path}: layers of unsupported kind {[(o.name, sorted(o.weights)) for o in others]}")
    if len(kapre) > 1:
        raise KerasWeightsError(f"{path}: {len(kapre)} Kapre mel layers, expected at most one")
    if kapre:
        report.frontend_check = _check_frontend(kapre[0], frontend)
    found = [layer for layer in layers if layer.kind in ("conv", "bn")]
    expected = network.keras_order()
    kinds = ["conv" if isinstance(m, torch.nn.Conv2d) else "bn" for m in expected]
    if [layer.kind for layer in found] != kinds:
        raise KerasWeightsError(
            f"{path}: layer sequence {[(layer.name, layer.kind) for layer in found]} does not match the "
            f"network's {kinds} (channels {network.cfg.channels}, embedding BN {network.cfg.embedding_bn_relu})")
    names = {id(m): n for n, m in network.named_modules()}
    prefix = "network." if isinstance(model, L3Embedder) else ""
    for layer, module in zip(found, expected):
        mname = prefix + names[id(module)]
        if layer.kind == "conv":
            pairs = [("weight", layer.weights["kernel"].transpose(3, 2, 0, 1), "kernel"),
                     ("bias", layer.weights["bias"], "bias")]
        else:
            pairs = [("weight", layer.weights["gamma"], "gamma"), ("bias", layer.weights["beta"], "beta"),
                     ("running_mean", layer.weights["moving_mean"], "moving_mean"),
                     ("running_var", layer.weights["moving_variance"], "moving_variance")]
        for attr, value, short in pairs:
            _assign(getattr(module, attr), value, f"{mname}.{attr}", layer.paths[short], layer.weights[short].shape)
            report.assigned[f"{mname}.{attr}"] = layer.paths[short]
    missing = [n for n, _ in _named_tensors(network, prefix) if n not in report.assigned]
    if missing:
        raise KerasWeightsError(f"{path}: tensors not filled: {missing}")
    model.eval()
    log.info("loaded %d tensors from %s (keras %s)", len(report.assigned), path, version)
    return report


def _named_tensors(network: L3Network, prefix: str):
    for name, p in network.named_parameters():
        yield prefix + name, p
    for name, b in network.named_buffers():
        if not name.endswith("num_batches_tracked"):
            yield prefix + name, b
