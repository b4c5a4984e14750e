"""Random-init, real-shaped models for testing the export path before trained weights exist
(no RoBERTa or OpenL3 weights can be downloaded here): a RoBERTa of any size with the real BPE
tokenizer, and the paper-shaped bundle of `export_onnx.py --random-paper`."""

from __future__ import annotations

import logging
from pathlib import Path

from cmer_edge.bundle import Bundle
from cmer_edge.export.bundle_io import write_random_bundle
from cmer_edge.model.config import HeadConfig

log = logging.getLogger("cmer_edge")

# roberta-large: 24 layers, 1024 hidden, 16 heads, 4096 FFN, 50265 BPE tokens, 514 positions.
ROBERTA_LARGE = {"layers": 24, "hidden": 1024, "heads": 16}


def write_random_roberta(out: str | Path, bpe_dir: str | Path, *, layers: int, hidden: int, heads: int,
                         seed: int = 0) -> Path:
    """save_pretrained() a random-init RobertaModel (+ the real tokenizer from vocab.json/merges.txt
    in `bpe_dir`) into `out`, loadable by cmer_edge.features.text.load_text_encoder."""
    import torch
    import transformers

    bpe = Path(bpe_dir)
    for name in ("vocab.json", "merges.txt"):
        if not (bpe / name).is_file():
            raise FileNotFoundError(f"RoBERTa BPE file {bpe / name} not found")
    tokenizer = transformers.RobertaTokenizer.from_pretrained(str(bpe))
    config = transformers.RobertaConfig(vocab_size=50265, hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=heads, intermediate_size=4 * hidden,
                                        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                                        bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed)
    model = transformers.RobertaModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return Path(out)


def paper_audio_spec(seed: int = 0) -> dict:
    """features.audio of the paper: emo_large (6552, openSMILE: runs natively, described only)
    + OpenL3 mel256 -> 6144 at hop 0.1 s with random-init weights."""
    from cmer_edge.features.l3.extractor import TorchL3Extractor

    l3 = TorchL3Extractor.from_name("l3.mel256.6144", weights="random", seed=seed).spec()
    emo = {"name": "opensmile.emo_large", "dim": 6552, "kind": "opensmile",
           "params": {"feature_set": "emo_large", "feature_level": "functionals", "sample_rate_hz": 16000},
           "weights_sha256": None}
    return {"name": f"{emo['name']}+{l3['name']}", "dim": emo["dim"] + l3["dim"], "kind": "chain", "parts": [emo, l3]}


def write_random_paper_bundle(out: str | Path, bpe_dir: str | Path, *, seed: int = 0,
                              roberta: dict[str, int] | None = None, max_tokens: int = 128) -> Bundle:
    """The paper's shapes with random weights: head HeadConfig() (12696 audio, 4096 text, h=128),
    text encoder RoBERTa-large shaped with the real tokenizer, <s>-pooled last 4 layers, audio
    emo_large + OpenL3-6144 (random-init L3 network)."""
    out = Path(out)
    shape = roberta or ROBERTA_LARGE
    log.info("writing a random-init RoBERTa %s into %s", shape, out / "text_model")
    write_random_roberta(out / "text_model", bpe_dir, seed=seed, **shape)
    cfg = HeadConfig(text_dim=4 * shape["hidden"])
    features = {"text": {"model": "text_model", "pooling": "cls", "last_layers": 4, "max_tokens": max_tokens,
                         "dim": cfg.text_dim, "random_init": True},
                "audio": paper_audio_spec(seed)}
    if features["audio"]["dim"] != cfg.audio_dim:
        raise AssertionError(f"paper audio spec is {features['audio']['dim']}-d, the head {cfg.audio_dim}")
    return write_random_bundle(out, cfg, features=features, seed=seed, name="random-paper", profile="paper")
