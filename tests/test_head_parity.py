"""Native head (cmer_edge.runtime.head) vs the PyTorch reference CMRoberta: offline forward.

fp32 on CPU must match within relative error 1e-5 (max |native - torch| / max |torch| over all
logits, padded positions included) for every config switch (modalities, use_sca, sca_layers),
small, edge and paper dims, T from 1 to 64, padding and `present` masks (helpers: helpers/head.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need_module

torch = need_module("torch")

from cmer_edge.runtime.head import NativeHead  # noqa: E402
from helpers.head import (  # noqa: E402
    EDGE,
    SMALL,
    TOLERANCE,
    HeadConfig,
    inputs,
    make_model,
    native,
    np_or_none,
    reference,
    rel_error,
    state_dict,
)

CONFIGS = [  # (config overrides, id)
    (dict(SMALL), "both"),
    (dict(SMALL, modalities="audio"), "audio"),
    (dict(SMALL, modalities="text"), "text"),
    (dict(SMALL, use_sca=False), "both_nosca"),
    (dict(SMALL, modalities="audio", use_sca=False), "audio_nosca"),
    (dict(SMALL, sca_layers=1), "sca1"),
    (dict(SMALL, sca_layers=3, num_heads=4, hidden=12), "sca3_h12"),
]
SHAPES = [(1, 1), (3, 7), (2, 64), (4, 16)]  # batch, steps


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_T{}".format(*s))
def test_forward_matches_torch(overrides, shape):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=sum(shape))
    head = native(model)
    x_a, x_t, lengths, _ = inputs(cfg, *shape, seed=shape[1])
    ref = reference(model, x_a, x_t, lengths)
    got = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy())
    assert rel_error(got, ref) <= TOLERANCE


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS[:4]], ids=[c[1] for c in CONFIGS[:4]])
def test_forward_with_missing_modalities_matches_torch(overrides):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=5)
    head = native(model)
    x_a, x_t, lengths, present = inputs(cfg, 3, 9, seed=11, with_present=True)
    ref = reference(model, x_a, x_t, lengths, present)
    got = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy(), present.numpy())
    assert rel_error(got, ref) <= TOLERANCE
    without = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy())
    assert rel_error(without, ref) > 1e-3, "the present mask must change the output"


def test_unused_modality_may_be_none():
    cfg = HeadConfig(**SMALL, modalities="text")
    model = make_model(cfg, seed=2)
    x_a, x_t, lengths, _ = inputs(cfg, 2, 5, seed=2)
    got = native(model).forward(None, x_t.numpy(), lengths.numpy())
    assert rel_error(got, reference(model, x_a, x_t, lengths)) <= TOLERANCE


def test_edge_dims_match_torch():
    cfg = HeadConfig(**EDGE)
    model = make_model(cfg, seed=3)
    x_a, x_t, lengths, present = inputs(cfg, 3, 16, seed=3, with_present=True)
    got = native(model, num_threads=2).forward(x_a.numpy(), x_t.numpy(), lengths.numpy(), present.numpy())
    assert rel_error(got, reference(model, x_a, x_t, lengths, present)) <= TOLERANCE


def test_paper_dims_match_torch():
    cfg = HeadConfig()  # Da = 12696, Dt = 4096, h = 128
    model = make_model(cfg, seed=4)
    x_a, x_t, lengths, _ = inputs(cfg, 2, 4, seed=4)
    lengths[1] = 2
    got = native(model, num_threads=2).forward(x_a.numpy(), x_t.numpy(), lengths.numpy())
    assert rel_error(got, reference(model, x_a, x_t, lengths)) <= TOLERANCE


def test_thread_count_does_not_change_results():
    cfg = HeadConfig(**EDGE)
    model = make_model(cfg, seed=6)
    x_a, x_t, lengths, _ = inputs(cfg, 2, 8, seed=6)
    args = (x_a.numpy(), x_t.numpy(), lengths.numpy())
    one = native(model, num_threads=1).forward(*args)
    two = native(model, num_threads=2).forward(*args)
    np.testing.assert_array_equal(one, two)


def test_float64_and_fortran_order_are_converted():
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=8)
    head = native(model)
    x_a, x_t, lengths, _ = inputs(cfg, 2, 6, seed=8)
    ref = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy())
    got = head.forward(np.asfortranarray(x_a.numpy().astype(np.float64)), np.asfortranarray(x_t.numpy()),
                       lengths.numpy().astype(np.int64))
    np.testing.assert_array_equal(got, ref)


def test_from_bundle_round_trip(tmp_path):
    from cmer_edge.bundle import save_bundle

    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=9)
    save_bundle(tmp_path / "b", head_config=cfg, head_tensors=state_dict(model), manifest={"window_utts": 5})
    head = NativeHead.from_bundle(tmp_path / "b", precision="fp32")
    assert head.window_utts == 5 and head.session().window_utts == 5
    x_a, x_t, lengths, _ = inputs(cfg, 2, 4, seed=9)
    got = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy())
    assert rel_error(got, reference(model, x_a, x_t, lengths)) <= TOLERANCE


def test_runtime_head_runs_without_importing_torch(tmp_path):
    """The live runtime loads a bundle and pushes utterances with numpy + _native only."""
    import json
    import subprocess
    import sys

    from cmer_edge.bundle import save_bundle

    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=10)
    save_bundle(tmp_path / "b", head_config=cfg, head_tensors=state_dict(model), manifest={"window_utts": 3})
    x_a, x_t, _, _ = inputs(cfg, 1, 4, seed=10)
    np.save(tmp_path / "x_a.npy", x_a[0].numpy())
    np.save(tmp_path / "x_t.npy", x_t[0].numpy())
    code = (
        "import json, sys, numpy as np\n"
        "from cmer_edge.runtime.head import NativeHead\n"
        f"head = NativeHead.from_bundle({str(tmp_path / 'b')!r}, precision='int8')\n"
        "live = head.session()\n"
        f"x_a, x_t = np.load({str(tmp_path / 'x_a.npy')!r}), np.load({str(tmp_path / 'x_t.npy')!r})\n"
        "probs = [live.push(a, t) for a, t in zip(x_a, x_t)]\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(json.dumps(np.stack(probs).tolist()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    probs = np.array(json.loads(done.stdout))
    assert probs.shape == (4, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_forward_reuses_its_workspace_across_shapes():
    """The head keeps one workspace, grown to the largest batch·steps seen: forwards of other shapes
    before, between and after give exactly what a fresh head gives."""
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=21)
    reused = native(model)
    for batch, steps, seed in ((2, 5, 1), (3, 9, 2), (1, 3, 3), (3, 9, 2), (4, 2, 4)):
        x_a, x_t, lengths, present = inputs(cfg, batch, steps, seed, with_present=True)
        args = (x_a.numpy(), x_t.numpy(), lengths.numpy(), present.numpy())
        np.testing.assert_array_equal(reused.forward(*args), native(model).forward(*args))
