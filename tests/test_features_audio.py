"""Audio extractor interface, input policy, chaining, and the openSMILE functionals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.ci import need

from cmer_edge.audio.convert import load_audio
from cmer_edge.features.base import (
    MIN_AUDIO_SAMPLES,
    AudioExtractor,
    AudioInputError,
    ChainExtractor,
    check_audio,
)
from cmer_edge.features.opensmile_func import EMO_LARGE_ENV, OpenSmileExtractor
from cmer_edge.features.registry import audio_extractor_names, make_audio_extractor

DIMS = {"eGeMAPSv02": 88, "ComParE_2016": 6373, "emo_large": 6552}


@pytest.fixture(scope="module")
def emo_large_conf(shared_dir):
    path = shared_dir / "opensmile" / "emo_large.conf"
    need(path.is_file(), f"emo_large config not found at {path}")
    return path


@pytest.fixture(scope="module")
def smile(emo_large_conf):
    return {
        "eGeMAPSv02": make_audio_extractor("opensmile.eGeMAPSv02"),
        "ComParE_2016": make_audio_extractor("opensmile.ComParE_2016"),
        "emo_large": make_audio_extractor("opensmile.emo_large", config_path=emo_large_conf),
    }


@pytest.fixture(scope="module")
def speech(speech_clips):
    return [load_audio(c.path) for c in speech_clips]


# -- input policy -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, match", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((1600, 2), np.float32), "mono"),
    (np.zeros(1600, np.int16), "floating"),
    (np.array([0.0] * 800 + [np.nan] + [0.0] * 800, np.float32), r"1 non-finite samples \(first at index 800\)"),
    (np.zeros(MIN_AUDIO_SAMPLES - 1, np.float32), f"{MIN_AUDIO_SAMPLES - 1} samples"),
    ([0.0] * 1600, "numpy array"),
])
def test_check_audio_refuses_bad_input_naming_the_value(bad, match):
    with pytest.raises(AudioInputError, match=match) as info:
        check_audio(bad, name="probe")
    assert isinstance(info.value, ValueError)
    assert "probe" in str(info.value)


def test_check_audio_pads_short_audio_centred():
    x = np.arange(1, 401, dtype=np.float32)
    y = check_audio(x, name="probe", min_samples=1000)
    assert y.shape == (1000,) and y.dtype == np.float32
    assert np.array_equal(y[300:700], x) and not y[:300].any() and not y[700:].any()
    z = check_audio(x.astype(np.float64), name="probe", min_samples=100)
    assert z.dtype == np.float32 and np.array_equal(z, x)


def test_factory_names_and_errors():
    names = audio_extractor_names()
    for expected in ("opensmile.eGeMAPSv02", "opensmile.ComParE_2016", "opensmile.emo_large",
                     "l3.mel256.6144", "l3.mel128.512", "edgel3.sea.64"):
        assert expected in names
    with pytest.raises(ValueError, match="unknown audio extractor 'opensmile.nope'"):
        make_audio_extractor("opensmile.nope")
    with pytest.raises(ValueError, match="needs weights="):
        make_audio_extractor("l3.mel256.6144")
    with pytest.raises(ValueError, match="keyed by part name"):
        make_audio_extractor("opensmile.eGeMAPSv02+opensmile.ComParE_2016", threads=2)
    with pytest.raises(ValueError, match="only for emo_large"):
        make_audio_extractor("opensmile.eGeMAPSv02", config_path="x.conf")


# -- openSMILE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("feature_set", list(DIMS))
def test_opensmile_dim_dtype_determinism_on_speech(smile, speech, feature_set):
    ext = smile[feature_set]
    assert isinstance(ext, AudioExtractor)
    assert ext.dim == DIMS[feature_set] and ext.name == f"opensmile.{feature_set}"
    outs = [ext(x) for x in speech[:3]]
    for y in outs:
        assert y.shape == (DIMS[feature_set],) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(outs[0], ext(speech[0]))  # deterministic
    assert not np.allclose(outs[0], outs[1])  # input-dependent
    spec = ext.spec()
    assert json.loads(json.dumps(spec)) == spec and spec["dim"] == ext.dim
    assert spec["versions"]["opensmile"]


def test_opensmile_short_and_silent_audio(smile):
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(480)).astype(np.float32)  # 30 ms: openSMILE alone gives NaN
    for ext in smile.values():
        assert np.isfinite(ext(short)).all()
        assert np.isfinite(ext(np.zeros(16_000, np.float32))).all()


def test_emo_large_config_from_env_and_errors(emo_large_conf, monkeypatch, tmp_path):
    monkeypatch.delenv(EMO_LARGE_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=EMO_LARGE_ENV):
        OpenSmileExtractor("emo_large")
    monkeypatch.setenv(EMO_LARGE_ENV, str(tmp_path / "missing.conf"))
    with pytest.raises(FileNotFoundError, match="missing.conf"):
        OpenSmileExtractor("emo_large")
    monkeypatch.setenv(EMO_LARGE_ENV, str(emo_large_conf))
    ext = OpenSmileExtractor("emo_large")
    assert ext.dim == 6552 and len(ext.spec()["params"]["config_sha256"]) == 64


def test_chain_concatenates_parts_in_order(smile, speech):
    chain = make_audio_extractor("opensmile.eGeMAPSv02+opensmile.emo_large",
                                 **{"opensmile.emo_large": {"config_path": smile["emo_large"]._config}})
    assert isinstance(chain, ChainExtractor)
    assert chain.dim == 88 + 6552 and chain.name == "opensmile.eGeMAPSv02+opensmile.emo_large"
    y = chain(speech[0])
    assert y.shape == (chain.dim,) and y.dtype == np.float32
    a, b = chain.offsets()["opensmile.eGeMAPSv02"], chain.offsets()["opensmile.emo_large"]
    assert np.array_equal(y[a[0]:a[1]], smile["eGeMAPSv02"](speech[0]))
    assert np.array_equal(y[b[0]:b[1]], smile["emo_large"](speech[0]))
    assert [p["name"] for p in chain.spec()["parts"]] == ["opensmile.eGeMAPSv02", "opensmile.emo_large"]
    with pytest.raises(AudioInputError, match="empty"):
        chain(np.zeros(0, np.float32))


def test_parallel_chain_gives_the_sequential_vector(smile, speech):
    parts = [smile["eGeMAPSv02"], smile["emo_large"]]
    sequential, parallel = ChainExtractor(parts), ChainExtractor(parts, parallel=True)
    try:
        for clip in speech[:3]:
            assert np.array_equal(parallel(clip), sequential(clip))
        with pytest.raises(AudioInputError, match="empty"):
            parallel(np.zeros(0, np.float32))
    finally:
        parallel.close()
