"""Ensemble bundles: several heads of one config whose probabilities the runtime averages.

One file holds the members (`members.<i>.<name>`, `head_members` = N); the PyTorch reference
(HeadEnsemble), the native sessions (push, replace, blank turns, the voice pool, a failing member,
the CPU fallback), the offline forward, `pack` (float16, int8 input projections) and `ensemble`
all agree on what the ensemble is."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need_module
from helpers.head import SMALL, make_model, rel_error, state_dict

torch = need_module("torch")

from cmer_edge import _native  # noqa: E402
from cmer_edge.backends.torch_models import load_head_module  # noqa: E402
from cmer_edge.bundle import BundleError, load_bundle, save_bundle  # noqa: E402
from cmer_edge.bundle.ensemble import ensemble_bundle  # noqa: E402
from cmer_edge.bundle.ensemble import main as ensemble_main  # noqa: E402
from cmer_edge.bundle.pack import pack_bundle  # noqa: E402
from cmer_edge.model.cm_roberta import HeadEnsemble  # noqa: E402
from cmer_edge.model.config import EMOTIONS, HeadConfig  # noqa: E402
from cmer_edge.model.voice_pool import pool_voice  # noqa: E402
from cmer_edge.runtime.head import NativeHead  # noqa: E402
from cmer_edge.training.dialogues import Dialogue  # noqa: E402
from cmer_edge.training.predictors import make_predictor  # noqa: E402

CFG = HeadConfig(**SMALL)
SEEDS = (3, 4, 5)


def _members():
    return [make_model(CFG, seed=s) for s in SEEDS]


def _utterances(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, CFG.audio_dim), dtype=np.float32),
            rng.standard_normal((n, CFG.text_dim), dtype=np.float32))


def _mean_probs(models, x_a, x_t, present=None) -> np.ndarray:
    """The members' mean probabilities over one dialogue [T, C] (the reference's own forward)."""
    lengths = torch.tensor([x_a.shape[0]])
    args = (torch.from_numpy(x_a[None]), torch.from_numpy(x_t[None]), lengths,
            None if present is None else torch.from_numpy(present[None]))
    with torch.no_grad():
        return np.mean([torch.softmax(m(*args), -1)[0].numpy() for m in models], axis=0)


@pytest.fixture()
def ensemble_dir(tmp_path):
    models = _members()
    path = save_bundle(tmp_path / "ens", head_config=CFG, head_tensors=[state_dict(m) for m in models],
                       manifest={"name": "ens", "window_utts": 4})
    return path, models


def test_bundle_stores_members_and_the_reference_averages_their_probabilities(ensemble_dir):
    path, models = ensemble_dir
    bundle = load_bundle(path)
    assert bundle.manifest.head_members == 3 and bundle.manifest.to_dict()["head_members"] == 3
    for got, model in zip(bundle.head_members(), models):
        ref = state_dict(model)
        assert set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
    with pytest.raises(BundleError, match="an ensemble of 3 heads"):
        bundle.head_tensors()
    module = load_head_module(bundle)
    assert isinstance(module, HeadEnsemble) and len(module.members) == 3
    x_a, x_t = _utterances(5, seed=0)
    with torch.no_grad():
        logits = module(torch.from_numpy(x_a[None]), torch.from_numpy(x_t[None]), torch.tensor([5]))[0]
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), _mean_probs(models, x_a, x_t), atol=1e-6)
    # one head stays a plain CMRoberta with its own logits
    single = save_bundle(path.parent / "one", head_config=CFG, head_tensors=[state_dict(models[0])], manifest={})
    assert load_bundle(single).manifest.head_members == 1
    assert "head_members" not in load_bundle(single).manifest.to_dict()
    assert not isinstance(load_head_module(load_bundle(single)), HeadEnsemble)


def test_a_head_file_that_does_not_split_into_its_members_is_refused(ensemble_dir, tmp_path):
    from safetensors.numpy import save_file

    path, models = ensemble_dir
    raw = {f"members.{i}.{k}": v for i, m in enumerate(models[:2]) for k, v in state_dict(m).items()}
    raw["members.1.extra"] = np.zeros(2, np.float32)
    save_file(raw, str(path / "head.safetensors"))
    with pytest.raises(BundleError, match="member 1 has other tensors than member 0"):
        load_bundle(path, verify=False).head_members()
    save_file({"audio.mean": np.zeros(3, np.float32)}, str(path / "head.safetensors"))
    with pytest.raises(BundleError, match="is not a member tensor"):
        load_bundle(path, verify=False).head_members()


def test_native_sessions_average_members_like_the_reference(ensemble_dir):
    path, models = ensemble_dir
    head = NativeHead.from_bundle(path)
    assert len(head.members) == 3 and head.weight_bytes == 3 * head.members[0].weight_bytes
    x_a, x_t = _utterances(6, seed=1)
    session = head.session(16)
    for i in range(6):
        provisional = session.push(x_a[i], None, provisional=True)  # the newest utterance's text not in yet
        present = np.ones((i + 1, 2), np.float32)
        present[-1, 1] = 0.0
        np.testing.assert_allclose(provisional, _mean_probs(models, x_a[:i + 1], x_t[:i + 1], present)[-1],
                                   atol=2e-6)
        final = session.replace_last(x_a[i], x_t[i])
        ref = _mean_probs(models, x_a[:i + 1], x_t[:i + 1])[-1]
        np.testing.assert_allclose(final, ref, atol=2e-6)
        np.testing.assert_allclose(np.exp(session.last_logits), ref, atol=2e-6)  # log of the mean
    offline = head.forward(x_a[None], x_t[None], np.array([6], np.int32))[0]
    np.testing.assert_allclose(np.exp(offline), _mean_probs(models, x_a, x_t), atol=2e-6)


def test_the_voice_pool_works_on_the_members_mean(ensemble_dir):
    path, models = ensemble_dir
    pooled = NativeHead.from_bundle(path, voice_weight=0.7).session(4)
    plain = NativeHead.from_bundle(path, voice_weight=0.0).session(4)
    x_a, x_t = _utterances(3, seed=2)
    neutral = EMOTIONS.index("neutral")
    for i in range(3):
        voice = plain.push(x_a[i], None, provisional=True)
        fused = plain.replace_last(x_a[i], x_t[i])
        np.testing.assert_allclose(pooled.push(x_a[i], x_t[i]), pool_voice(fused, voice, 0.7, neutral), atol=1e-6)


def test_a_blank_turn_gives_each_member_its_own_mean(ensemble_dir):
    """native (push_blank) == PyTorch (present = [0, 0]) on a dialogue with a blank turn; the members'
    normalisation means differ, so one shared blank input would not be blank for all of them."""
    path, models = ensemble_dir
    bundle = load_bundle(path)
    means = [m["audio.mean"] for m in bundle.head_members()]
    assert not np.allclose(means[0], means[1])
    x_a, x_t = _utterances(4, seed=3)
    present = np.ones((4, 2), np.float32)
    present[1] = 0.0
    dialogue = Dialogue("d", [0, 1, 2, 3], x_a, x_t, present, np.zeros(4, np.int64))
    native = make_predictor(bundle, "native")([dialogue], "live", 4)[0]
    reference = make_predictor(bundle, "torch")([dialogue], "live", 4)[0]
    np.testing.assert_allclose(native, reference, atol=1e-5)


def test_a_member_failing_after_another_took_the_push_leaves_the_window_unchanged(ensemble_dir):
    path, _ = ensemble_dir
    head = NativeHead.from_bundle(path)
    faulty, clean = head.session(3), head.session(3)
    x_a, x_t = _utterances(8, seed=4)
    for i in range(8):
        if i in (2, 5):  # growing window, then sliding
            _native.testing.inject_session_fault(faulty._natives[1], 2)
            with pytest.raises(RuntimeError, match="injected fault"):
                faulty.push(x_a[(i + 3) % 8], x_t[(i + 3) % 8])
            assert faulty.pushed == clean.pushed and faulty.size == clean.size
        for s in (faulty, clean):
            s.push(x_a[i], None, provisional=True)
            s.replace_last(x_a[i], x_t[i])
        np.testing.assert_array_equal(faulty.last_logits, clean.last_logits)


def test_a_disabled_member_moves_every_member_to_the_cpu_head(ensemble_dir, caplog):
    """A CUDA error in any member: the whole ensemble continues on CPU heads, the window replayed
    (stood in for by CPU heads that keep their weights, disabled by the test hook)."""
    path, models = ensemble_dir
    head = NativeHead(NativeHead.from_bundle(path).members, CFG, fallback=load_bundle(path).head_members())
    session, clean = head.session(3), NativeHead.from_bundle(path).session(3)
    x_a, x_t = _utterances(7, seed=5)
    for i in range(7):
        if i == 4:
            _native.testing.disable_head(head.members[2], "simulated")
        for s in (session, clean):
            s.push(x_a[i], x_t[i])
        np.testing.assert_array_equal(session.last_logits, clean.last_logits)
        assert session.pushed == clean.pushed
    assert not head.can_fall_back and all(not m.disabled for m in head.members)
    assert "CUDA head disabled (simulated)" in caplog.text


def test_pack_keeps_every_member_as_float16_with_int8_input_projections(ensemble_dir, tmp_path):
    from safetensors.numpy import load_file

    path, models = ensemble_dir
    packed = load_bundle(pack_bundle(path, tmp_path / "packed", [], half_head=True, int8_inputs=True))
    assert packed.manifest.head_members == 3
    raw = load_file(str(packed.file("head")))
    weight = "members.2.audio.encoder.lstm.weight_ih_l0"
    assert raw[weight].dtype == np.int8 and raw[weight + ".int8_scale"].shape == (raw[weight].shape[0],)
    assert raw["members.2.classifier.3.weight"].dtype == np.float16
    original = state_dict(models[2])
    got = packed.head_members()[2][weight.removeprefix("members.2.")]
    row_max = np.abs(original[weight.removeprefix("members.2.")]).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - original[weight.removeprefix("members.2.")]) <= row_max / 254 * 1.01 + 1e-3)
    x_a, x_t = _utterances(5, seed=6)
    lengths = np.array([5], np.int32)
    a = NativeHead.from_bundle(path).forward(x_a[None], x_t[None], lengths)
    b = NativeHead.from_bundle(packed, precision="fp32").forward(x_a[None], x_t[None], lengths)
    assert rel_error(b, a) < 2e-2 and np.array_equal(a.argmax(-1), b.argmax(-1))
    # the runtime's int8 input projections quantise the stored int8 weights to themselves: the bundle
    # asks for them (fewer bytes per push), and no value moves
    assert packed.manifest.runtime.head_precision == "int8"
    assert load_bundle(path).manifest.runtime.head_precision == "fp32"
    head, fp32 = NativeHead.from_bundle(packed), NativeHead.from_bundle(packed, precision="fp32")
    assert head.precision == "int8" and head.weight_bytes < fp32.weight_bytes
    assert rel_error(head.forward(x_a[None], x_t[None], lengths), b) < 1e-5


def test_a_bad_head_precision_in_the_manifest_is_named(ensemble_dir):
    import json

    path, _ = ensemble_dir
    raw = json.loads((path / "manifest.json").read_text())
    raw["runtime"] = {"head_precision": "int4"}
    (path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="runtime.head_precision"):
        load_bundle(path)


def test_ensemble_command_combines_alike_bundles_and_refuses_others(tmp_path, capsys):
    models = _members()
    paths = [save_bundle(tmp_path / f"m{i}", head_config=CFG, head_tensors=state_dict(m),
                         manifest={"name": f"m{i}", "window_utts": 4, "metrics": {"dev": {"uar": 50.0 + i}},
                                   "runtime": {"voice_weight": 0.3}})
             for i, m in enumerate(models)]
    assert ensemble_main([str(p) for p in paths[:2]] + ["--out", str(tmp_path / "e2")]) == 0
    # an ensemble is a member too: its heads all join
    assert ensemble_main([str(tmp_path / "e2"), str(paths[2]), "--out", str(tmp_path / "e3")]) == 0
    e3 = load_bundle(tmp_path / "e3")
    assert e3.manifest.head_members == 3 and e3.manifest.runtime.voice_weight == 0.0  # refitted, not inherited
    assert [m["heads"] for m in e3.manifest.provenance["ensemble"]["members"]] == [2, 1]
    packed = pack_bundle(paths[2], tmp_path / "p2", [], half_head=True, int8_inputs=True)  # asks for int8
    assert ensemble_bundle([paths[0], packed], tmp_path / "mixed").is_dir()
    assert load_bundle(tmp_path / "mixed").manifest.runtime.head_precision == "fp32"  # not int8 for member 0
    x_a, x_t = _utterances(4, seed=7)
    got = NativeHead.from_bundle(e3).forward(x_a[None], x_t[None], np.array([4], np.int32))[0]
    np.testing.assert_allclose(np.exp(got), _mean_probs(models, x_a, x_t), atol=2e-6)
    other = save_bundle(tmp_path / "other", head_config=HeadConfig(**dict(SMALL, hidden=4)),
                        head_tensors=state_dict(make_model(HeadConfig(**dict(SMALL, hidden=4)), seed=1)),
                        manifest={"window_utts": 4})
    capsys.readouterr()
    assert ensemble_main([str(paths[0]), str(other), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "manifest field head differs" in err[0]
    (paths[1] / "notes.txt").write_text("x")
    with_file = save_bundle(tmp_path / "f", head_config=CFG, head_tensors=state_dict(models[1]),
                            manifest={"window_utts": 4}, extra_files={"notes": paths[1] / "notes.txt"})
    with pytest.raises(BundleError, match=r"files \['notes'\] differ"):
        ensemble_bundle([paths[0], with_file], tmp_path / "bad2")
