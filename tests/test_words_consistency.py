"""The words-decide consistency term of the trainer (TrainConfig.words_consistency): where an utterance's
words decide and its voice is present, the fused answer is pulled towards the same head's words-alone
answer."""

from __future__ import annotations

import numpy as np

from helpers.ci import need_module

torch = need_module("torch")

from cmer_edge.model.cm_roberta import CMRoberta  # noqa: E402
from cmer_edge.model.config import HeadConfig  # noqa: E402
from cmer_edge.training.dialogues import Dialogue  # noqa: E402
from cmer_edge.training.trainer import TrainConfig, _words_consistency, predict, train_head  # noqa: E402

SMALL = dict(audio_dim=6, text_dim=8, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12)


def test_term_is_the_kl_from_the_words_alone_answer_on_the_cells_whose_words_decide():
    torch.manual_seed(0)
    model = CMRoberta(HeadConfig(**SMALL)).eval()
    b, t = 3, 2
    x_a, x_t = torch.randn(b, t, 6), torch.randn(b, t, 8)
    lengths, present = torch.full((b,), t), torch.ones(b, t, 2)
    labels = torch.full((b, t), -100)
    labels[:, -1] = torch.tensor([1, 2, 3])
    keep = torch.zeros(b, t, 2, dtype=torch.bool)
    keep[0, -1, 1] = True   # row 0: the words decide
    keep[1, -1, 0] = True   # row 1: the voice decides
    logits = model(x_a, x_t, lengths, present)  # row 2: nothing marked
    got = _words_consistency(model, logits, x_a, x_t, lengths, present, labels, keep)
    assert model.training  # left in training mode, as the loop expects
    words_only = present.clone()
    words_only[0, -1, 0] = 0.0
    with torch.no_grad():
        q = torch.log_softmax(model.eval()(x_a, x_t, lengths, words_only)[0, -1], -1)
    p = torch.log_softmax(logits[0, -1], -1)
    assert torch.allclose(got, (q.exp() * (q - p)).sum(), atol=1e-6)
    assert got.requires_grad and got.item() > 0
    present[0, -1, 0] = 0.0  # the voice already hidden (modality dropout): nothing to pull
    assert _words_consistency(model, logits, x_a, x_t, lengths, present, labels, keep).item() == 0.0


def _toy(rng, n, words_decide):
    """One-utterance dialogues. Words decide: the words carry the label, the voice is a fixed timbre
    that also leans, spuriously, to a class of its own. Voice decides: the voice carries the label."""
    out = []
    for i in range(n):
        label = int(rng.integers(7))
        x_t = rng.normal(0, 1, 8).astype(np.float32)
        x_a = rng.normal(0, 1, 6).astype(np.float32)
        if words_decide:
            x_t[label % 8] += 3.0
            x_a[:] = 2.0 + 0.3 * x_a
            x_a[int(rng.integers(6))] += 3.0  # a voice that says something the label does not
        else:
            x_a[label % 6] += 3.0
        keep = np.array([[not words_decide, words_decide]])
        out.append(Dialogue(f"{'w' if words_decide else 'v'}{i}", [0], x_a[None], x_t[None],
                            np.ones((1, 2), np.float32), np.array([label]), keep=keep))
    return out


def test_training_with_the_term_brings_the_fused_answer_to_the_words_alone_answer():
    rng = np.random.default_rng(0)
    train = _toy(rng, 300, True) + _toy(rng, 300, False)
    dev = _toy(rng, 60, True) + _toy(rng, 60, False)
    held = _toy(rng, 200, True)
    gaps = {}
    for weight in (0.0, 2.0):
        cfg = TrainConfig(protocol="live", window_utts=1, max_epochs=12, patience=12, lr=3e-3, seed=0,
                          modality_dropout=0.3, words_consistency=weight)
        model = train_head(HeadConfig(**SMALL), cfg, train, dev).model
        fused = np.concatenate(predict(model, held, "live", 1))
        words = np.concatenate(predict(model, held, "live", 1, hide="audio"))
        gaps[weight] = float(np.mean(np.sum(words * (np.log(words) - np.log(fused)), -1)))
    assert gaps[2.0] < 0.5 * gaps[0.0], gaps
