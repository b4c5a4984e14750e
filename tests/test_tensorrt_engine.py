"""TensorRT engine path: names, fingerprints and profile shapes (run anywhere, on real exported
graphs and real files), and the build + run path itself (marked `tensorrt`: skips here).

No mock pretends to be TensorRT: what needs it is marked and skips with a reason.
"""

from __future__ import annotations

import importlib.util
import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.ci import need_module
from cmer_edge.backends.engine_fingerprint import (
    DeviceInfo,
    EngineFingerprint,
    EngineMismatchError,
    EngineName,
    check_engine,
    engine_filename,
    find_engine,
    fingerprint_path,
    sha256_file,
    short_version,
    sm_of,
)

ORIN = DeviceInfo("10.3.0", "Orin", "8.7")                   # JetPack 6.1/6.2, Jetson AGX Orin
H100 = DeviceInfo("10.7.0.23", "NVIDIA H100 80GB HBM3", "9.0")
EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"


def test_engine_names():
    name = engine_filename("text_encoder", "fp16", "10.3.0", "8.7")
    assert name == "text_encoder.fp16.trt10.3.0.sm87.engine"
    assert EngineName.parse(name) == EngineName("text_encoder", "fp16", "10.3.0", "87")
    assert engine_filename("head", "int8", H100.tensorrt_version, (9, 0)) == "head.int8.trt10.7.0.sm90.engine"
    assert short_version("10.7.0.23") == "10.7.0" and sm_of("8.7") == "87" and sm_of((12, 0)) == "120"
    for bad in ("text_encoder.fp16.engine", "text_encoder.bf16.trt10.3.0.sm87.engine",
                "text-encoder.fp16.trt10.3.0.sm87.engine", "x.fp16.trt10.3.sm87.engine"):
        with pytest.raises(ValueError, match="is not <model>"):
            EngineName.parse(bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        engine_filename("head", "bf16", "10.3.0", "8.7")
    with pytest.raises(ValueError, match="not of the form major.minor.patch"):
        engine_filename("head", "fp16", "10", "8.7")


@pytest.fixture(scope="module")
def head_onnx(tmp_path_factory):
    """A real exported head graph (small dims)."""
    need_module("torch")
    need_module("onnx")
    from cmer_edge.export.bundle_export import export_bundle
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.model.config import HeadConfig

    bundle = tmp_path_factory.mktemp("bundle")
    write_random_bundle(bundle, HeadConfig(audio_dim=12, text_dim=8, hidden=8, ffn_dim=16, classifier_dim=16),
                        features={})
    return export_bundle(bundle, models=["head"]).exported["onnx.head"]


def test_profile_shapes_from_the_exported_graph(head_onnx):
    from cmer_edge.export.profiles import parse_axis_override, profile_shapes

    shapes = profile_shapes(head_onnx)
    assert shapes == {
        "x_a": {"min": [1, 1, 12], "opt": [1, 16, 12], "max": [8, 64, 12]},
        "x_t": {"min": [1, 1, 8], "opt": [1, 16, 8], "max": [8, 64, 8]},
        "lengths": {"min": [1], "opt": [1], "max": [8]},
        "present": {"min": [1, 1, 2], "opt": [1, 16, 2], "max": [8, 64, 2]}}
    small = profile_shapes(head_onnx, [parse_axis_override("utterances=1,4,16")])
    assert small["x_a"] == {"min": [1, 1, 12], "opt": [1, 4, 12], "max": [8, 16, 12]}
    with pytest.raises(ValueError, match="no dynamic axis 'tokens'"):
        profile_shapes(head_onnx, [parse_axis_override("tokens=1,2,3")])
    for bad in ("tokens=1,2", "=1,2,3", "tokens=a,b,c"):
        with pytest.raises(ValueError, match="is not NAME=MIN,OPT,MAX"):
            parse_axis_override(bad)
    with pytest.raises(ValueError, match="need 1 <= min <= opt <= max"):
        parse_axis_override("tokens=4,2,8")


def write_engine(directory: Path, onnx_path: Path, device: DeviceInfo, precision: str = "fp16",
                 payload: bytes = b"serialized engine bytes") -> Path:
    """An engine file + the fingerprint build_engine writes (the bytes are not a TensorRT plan:
    only the naming/fingerprint logic is under test here)."""
    from cmer_edge.export.profiles import profile_shapes

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / engine_filename("head", precision, device.tensorrt_version, device.compute_capability)
    path.write_bytes(payload)
    fp = EngineFingerprint("head", precision, device.tensorrt_version, device.gpu_name, device.compute_capability,
                           onnx_path.name, sha256_file(onnx_path), sha256_file(path), profile_shapes(onnx_path),
                           ["FP16"], 1 << 30, "0.1.0", "2026-11-24T00:00:00+00:00")
    fingerprint_path(path).write_text(fp.to_json())
    return path


def test_fingerprint_accepts_the_device_it_was_built_on(tmp_path, head_onnx):
    engine = write_engine(tmp_path / "engines", head_onnx, ORIN)
    fp = check_engine(engine, ORIN, onnx_sha256=sha256_file(head_onnx))
    assert fp.gpu_name == "Orin" and fp.profiles["x_a"]["max"] == [8, 64, 12]
    assert json.loads(fingerprint_path(engine).read_text())["format"] == "cmer_edge.trt_engine"
    assert find_engine(tmp_path / "engines", "head", ORIN) == engine
    assert find_engine(tmp_path / "engines", "head", ORIN, precision="int8") is None
    assert find_engine(tmp_path / "engines", "head", H100) is None


@pytest.mark.parametrize("device, message", [
    (DeviceInfo("10.7.0", "Orin", "8.7"), "built with TensorRT 10.3.0, this is TensorRT 10.7.0"),
    (DeviceInfo("10.3.0", "NVIDIA H100 80GB HBM3", "9.0"), "compute capability 8.7 (sm87), this GPU is 9.0 (sm90)"),
    (DeviceInfo("10.3.0", "Orin (nvgpu)", "8.7"), "built on a 'Orin' GPU, this is a 'Orin (nvgpu)'"),
])
def test_fingerprint_refuses_other_tensorrt_or_gpu(tmp_path, head_onnx, device, message):
    engine = write_engine(tmp_path, head_onnx, ORIN)
    with pytest.raises(EngineMismatchError, match="refusing TensorRT engine head.fp16.trt10.3.0.sm87.engine") as err:
        check_engine(engine, device)
    assert message in str(err.value) and "python export/build_engine.py" in str(err.value)


def test_fingerprint_refuses_changed_files(tmp_path, head_onnx):
    engine = write_engine(tmp_path, head_onnx, ORIN)
    with pytest.raises(EngineMismatchError, match="another head.onnx than the bundle holds now"):
        check_engine(engine, ORIN, onnx_sha256="0" * 64)
    engine.write_bytes(b"another engine")
    with pytest.raises(EngineMismatchError, match="changed after it was built"):
        check_engine(engine, ORIN)
    renamed = engine.with_name("head.int8.trt10.3.0.sm87.engine")
    engine = write_engine(tmp_path, head_onnx, ORIN)
    shutil.copy(engine, renamed)
    shutil.copy(fingerprint_path(engine), fingerprint_path(renamed))
    with pytest.raises(EngineMismatchError, match="file name says precision int8 but its fingerprint says fp16"):
        check_engine(renamed, ORIN)
    fingerprint_path(engine).unlink()
    with pytest.raises(EngineMismatchError, match="has no fingerprint"):
        check_engine(engine, ORIN)
    fingerprint_path(engine).write_text("{not json")
    with pytest.raises(EngineMismatchError, match="unreadable"):
        check_engine(engine, ORIN)
    with pytest.raises(EngineMismatchError, match="not found"):
        check_engine(tmp_path / "head.fp16.trt10.3.0.sm87.missing", ORIN)


def test_text_calibration_batches_from_meld(tmp_path, shared_dir):
    need_module("transformers")
    import csv

    from cmer_edge.export.calibration import (
        check_batch,
        load_calibration_npz,
        text_calibration_batches,
        write_calibration_npz,
    )

    bpe = shared_dir / "tokenizers" / "roberta-bpe"
    import transformers

    tok_json = tmp_path / "tok.json"
    transformers.RobertaTokenizer.from_pretrained(str(bpe)).backend_tokenizer.save(str(tok_json))
    with open(shared_dir / "data/meld/dev_sent_emo.csv", encoding="utf-8", newline="") as fh:
        texts = [row["Utterance"] for row in csv.DictReader(fh)]
    batches = text_calibration_batches(texts, tok_json, tokens=16, batch=2, limit=40)
    assert len(batches) == 20
    ids, mask = batches[0]["input_ids"], batches[0]["attention_mask"]
    assert ids.shape == mask.shape == (2, 16) and ids.dtype == np.int64
    assert (ids[:, 0] == 0).all() and ((ids == 2) & (mask == 1)).sum(axis=1).tolist() == [1, 1]  # <s> ... </s>
    assert (ids[mask == 0] == 1).all()
    opt = {"input_ids": [2, 16], "attention_mask": [2, 16]}
    write_calibration_npz(tmp_path / "calib", batches[:3])
    loaded = load_calibration_npz(tmp_path / "calib", opt)
    assert len(loaded) == 3 and np.array_equal(loaded[1]["input_ids"], batches[1]["input_ids"])
    with pytest.raises(ValueError, match=r"input_ids has shape \[2, 16\], calibration needs the profile's opt shape"):
        check_batch(batches[0], {"input_ids": [1, 16], "attention_mask": [1, 16]}, "batch0")


def test_build_config_and_cli_errors(tmp_path, capsys):
    from cmer_edge.export.tensorrt_build import EngineBuildConfig

    with pytest.raises(ValueError, match="int8 needs calibration"):
        EngineBuildConfig(precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        EngineBuildConfig(precision="bf16")
    main = runpy.run_path(str(EXPORT_DIR / "build_engine.py"))["main"]
    assert main([str(tmp_path)]) == 2
    assert "not a bundle" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="checks the error raised where TensorRT is absent; it is installed here")
def test_without_tensorrt_the_engine_says_how_to_get_it(tmp_path, head_onnx):
    from cmer_edge.backends.tensorrt_engine import TensorRTEngine, TensorRTUnavailable

    engine = write_engine(tmp_path, head_onnx, ORIN)
    with pytest.raises(TensorRTUnavailable, match="TensorRT Python package is not installed"):
        TensorRTEngine(engine)


def test_head_calibration_batches_from_a_feature_store(tmp_path):
    """int8 calibration of the head reads the feature store the bundle was trained from."""
    need_module("torch")
    from cmer_edge.export.bundle_io import write_random_bundle
    from cmer_edge.export.calibration import head_calibration_batches
    from cmer_edge.features.store import FeatureStore
    from cmer_edge.model.config import HeadConfig

    store = FeatureStore.open(tmp_path / "store", create=True, corpus="synthetic")
    rows = [{"dialogue_id": d, "utterance_id": u, "label": 0} for d, n in ((0, 5), (1, 2)) for u in range(n)]
    store.set_index("train", rows)
    rng = np.random.default_rng(0)
    values = {}
    for name, dim in (("opensmile.eGeMAPSv02", 3), ("edgel3.sea.64", 2), ("text.minilm", 4)):
        store.declare(name, {"dim": dim})
        writer = store.writer("train", name)
        values[name] = rng.standard_normal((len(rows), dim)).astype(np.float32)
        for i in range(len(rows)):
            writer.put(i, None if (name == "text.minilm" and i == 3) else values[name][i])
        writer.flush()
    features = {"audio": {"name": "opensmile.eGeMAPSv02+edgel3.sea.64", "kind": "chain", "dim": 5,
                          "parts": [{"name": "opensmile.eGeMAPSv02", "dim": 3}, {"name": "edgel3.sea.64", "dim": 2}]},
                "text": {"name": "text.minilm", "dim": 4}}
    bundle = write_random_bundle(tmp_path / "bundle", HeadConfig(audio_dim=5, text_dim=4, hidden=4, ffn_dim=8,
                                                                 classifier_dim=8), features=features)
    batches = head_calibration_batches(tmp_path / "store", "train", bundle, batch=2, utterances=4)
    assert len(batches) == 3  # 7 live windows -> 3 full batches of 2
    first = batches[0]
    assert {k: v.shape for k, v in first.items()} == {"x_a": (2, 4, 5), "x_t": (2, 4, 4), "lengths": (2,),
                                                     "present": (2, 4, 2)}
    assert first["lengths"].tolist() == [1, 2]
    np.testing.assert_array_equal(first["x_a"][1, :2, :3], values["opensmile.eGeMAPSv02"][:2])
    np.testing.assert_array_equal(first["x_t"][1, :2], values["text.minilm"][:2])
    assert not first["x_a"][0, 1:].any()  # padding
    last = batches[2]  # windows 5 and 6: dialogue 0 utterance 4 (window 1..4), dialogue 1 utterance 0
    assert last["lengths"].tolist() == [4, 1]
    assert last["present"][0, :, 1].tolist() == [1.0, 1.0, 0.0, 1.0]  # row 3's text was unusable
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        head_calibration_batches(tmp_path / "store", "train", bundle, batch=8, utterances=4)
