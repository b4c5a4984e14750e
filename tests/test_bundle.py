"""The typed bundle manifest: one load-and-validate with one-line errors naming the field, safe
loading of untrusted bundles (listed files only, inside the folder, sha256), portable manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cmer_edge.bundle import BundleError, Manifest, add_artifacts, default_bundle_path, load_bundle, save_bundle
from cmer_edge.bundle.files import onnx_external_locations
from cmer_edge.bundle.store import absolute_paths
from cmer_edge.model.config import HeadConfig

CFG = HeadConfig(audio_dim=6, text_dim=8, hidden=4, num_heads=2, ffn_dim=8, classifier_dim=8)


def _bundle(tmp_path: Path, **manifest) -> Path:
    tensors = {"w": np.arange(6, dtype=np.float32)}
    return save_bundle(tmp_path / "b", head_config=CFG, head_tensors=tensors,
                       manifest={"name": "t", "features": {}, **manifest})


def _edit(root: Path, change) -> None:
    raw = json.loads((root / "manifest.json").read_text())
    change(raw)
    (root / "manifest.json").write_text(json.dumps(raw))


def test_round_trip_keeps_every_field(tmp_path):
    root = _bundle(tmp_path, window_utts=8, protocol="live", recipe={"command": "train"}, custom={"x": 1})
    bundle = load_bundle(root)
    assert isinstance(bundle.manifest, Manifest)
    assert bundle.manifest.window_utts == 8 and bundle.manifest.protocol == "live"
    assert bundle.manifest.provenance["recipe"] == {"command": "train"}
    assert json.loads((root / "manifest.json").read_text()) == bundle.manifest.to_dict()


def test_embedded_manifest_round_trips_and_is_portable():
    root = default_bundle_path()
    raw = json.loads((root / "manifest.json").read_text())
    bundle = load_bundle(root)
    assert bundle.manifest.to_dict() == raw
    assert absolute_paths(raw) == []


@pytest.mark.parametrize("change, field", [
    (lambda m: m["head"].pop("text_dim"), "head.text_dim"),
    (lambda m: m.__setitem__("window_utts", "16"), "window_utts"),
    (lambda m: m.__setitem__("window_utts", 2.5), "window_utts"),
    (lambda m: m["head"].__setitem__("hidden", "64"), "head.hidden"),
    (lambda m: m.__setitem__("protocol", "offline"), "protocol"),
    (lambda m: m.__setitem__("labels", ["a"]), "labels"),
    (lambda m: m["sha256"].clear(), "sha256"),
    (lambda m: m.__setitem__("features", {"audio": {"name": "x"}}), "features.audio.dim"),
    (lambda m: m.__setitem__("runtime", {"onnx_precision": {"text_encoder": "int4"}}),
     "runtime.onnx_precision.text_encoder"),
    (lambda m: m.__setitem__("format_version", 99), "format_version"),
])
def test_bad_manifest_names_the_field(tmp_path, change, field):
    root = _bundle(tmp_path)
    _edit(root, change)
    with pytest.raises(BundleError, match=f"manifest field {field}") as info:
        load_bundle(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.bin", "a/../../x", "C:\\x", "~/x", "a\\b"])
def test_files_outside_the_bundle_are_refused(tmp_path, name):
    root = _bundle(tmp_path)
    _edit(root, lambda m: (m["files"].__setitem__("extra", name), m["sha256"].__setitem__(name, "0" * 64)))
    with pytest.raises(BundleError, match="not a relative path inside the bundle"):
        load_bundle(root)


def test_symlink_out_of_the_bundle_is_refused(tmp_path):
    root = _bundle(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x")
    os.symlink(secret, root / "link.bin")
    with pytest.raises(BundleError, match="outside the bundle folder"):
        add_artifacts(root, {"extra": "link.bin"})


def test_corrupt_file_is_refused(tmp_path):
    root = _bundle(tmp_path)
    (root / "head.safetensors").write_bytes((root / "head.safetensors").read_bytes()[:-1] + b"\0")
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(root)


def test_save_refuses_absolute_paths(tmp_path):
    with pytest.raises(BundleError, match="manifest field features.text.model holds an absolute path"):
        _bundle(tmp_path, features={"text": {"model": "/home/me/runs/ft"}})


def _onnx_with_external(location: str) -> bytes:
    """A minimal ModelProto: graph { initializer { external_data { key: location, value } } }."""
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload
    entry = field(1, b"location") + field(2, location.encode())
    tensor = field(8, b"w") + field(13, entry)
    return field(7, field(5, tensor))


def test_onnx_external_data_must_be_listed_and_inside(tmp_path):
    assert onnx_external_locations(default_bundle_path() / "text_encoder.int8.onnx") == []
    root = _bundle(tmp_path)
    (root / "g.onnx").write_bytes(_onnx_with_external("../../etc/shadow"))
    assert onnx_external_locations(root / "g.onnx") == ["../../etc/shadow"]
    with pytest.raises(BundleError, match="external data.*not a relative path"):
        add_artifacts(root, {"onnx.x": "g.onnx"})
    (root / "g.onnx").write_bytes(_onnx_with_external("g.data"))
    (root / "g.data").write_bytes(b"0")
    with pytest.raises(BundleError, match="'g.data' is not a file the manifest lists"):
        add_artifacts(root, {"onnx.x": "g.onnx"})
    assert "onnx.x" not in load_bundle(root).manifest.files  # a refused artefact is not registered
    bundle = add_artifacts(root, {"onnx.x.data": "g.data", "onnx.x": "g.onnx"})
    assert bundle.file("onnx.x").is_file()


def test_pack_strips_the_build_machines_paths(tmp_path):
    from cmer_edge.bundle.pack import pack_bundle

    tensors = {"w": np.arange(6, dtype=np.float32)}
    src = save_bundle(tmp_path / "run", head_config=CFG, head_tensors=tensors, local_paths=True,
                      manifest={"name": "run", "features": {"text": {"model": "/home/me/runs/ft_minilm"}},
                                "recipe": {"command": "train --out /home/me/runs/edge"}})
    packed = load_bundle(pack_bundle(src, tmp_path / "packed", []))
    assert absolute_paths(packed.manifest.to_dict()) == []
    assert packed.manifest.features.text.model == "ft_minilm"
    assert packed.manifest.provenance["recipe"]["command"] == "train --out edge"
