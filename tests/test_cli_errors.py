"""Issue 12 item 4: one validation layer for every CLI (cmer_edge.cli_common). Bad arguments, files,
bundles and devices are one `error: ...` line and exit 2 (no traceback unless -v); SIGINT exits 130
after the summary; a closed stdout (`| head -1`) exits quietly like a Unix tool."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cmer_edge.cli_common import UserError, int_in_range, positive_float, run_cli, threads_arg, window_arg


# -- the layer itself -------------------------------------------------------------------------------
@pytest.mark.parametrize("parse, good, bad", [
    (window_arg, ["1", "16", "256"], ["0", "257", "100000", "1e7", "-3", "x", "2.5"]),
    (threads_arg, ["1", "2", "64"], ["0", "512", "-1", "two"]),
    (int_in_range(1, 3), ["1", "3"], ["4", ""]),
])
def test_integer_ranges(parse, good, bad):
    assert [parse(v) for v in good] == [int(v) for v in good]
    for v in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(v)


def test_positive_finite_seconds():
    parse = positive_float("seconds")
    assert parse("0.5") == 0.5 and parse("120") == 120.0
    for v in ("0", "-1", "nan", "inf", "-inf", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(v)
    assert positive_float("x", allow_zero=True)("0") == 0.0


def _raises(exc):
    def main(argv):
        raise exc
    return main


def test_run_cli_exit_codes(capsys):
    assert run_cli(_raises(UserError("the file is bad")), []) == 2
    err = capsys.readouterr().err
    assert err == "error: the file is bad\n"
    assert run_cli(_raises(FileNotFoundError("no such file: x.wav")), ["-v"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("error: no such file: x.wav")  # -v: with the traceback
    assert run_cli(_raises(KeyboardInterrupt()), []) == 130
    assert run_cli(_raises(SystemExit("nothing to extract")), []) == 2
    assert capsys.readouterr().err.endswith("error: nothing to extract\n")
    assert run_cli(_raises(SystemExit(0)), []) == 0
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: its traceback is kept (exit 1)
        run_cli(_raises(ZeroDivisionError("bug")), [])


def test_every_cli_uses_the_layer():
    """Each CLI's main returns 2 on a bad range instead of raising, and names the range."""
    from cmer_edge import evaluate, extract, finetune, listen, train
    from cmer_edge.bench.__main__ import main as bench_main

    cases = [(listen.main, ["--window", "0"]), (listen.main, ["--threads", "512"]),
             (listen.main, ["--max-seconds", "-1"]), (listen.main, ["--window", "100000"]),
             (evaluate.main, ["--store", "x", "--window", "1000"]),
             (extract.main, ["meld", "--root", "x", "--store", "y", "--workers", "0"]),
             (train.main, ["--store", "x", "--out", "y", "--threads", "65"]),
             (finetune.main, ["--meld-dir", "x", "--out", "y", "--threads", "-2"]),
             (bench_main, ["pipeline", "--threads", "0"])]
    for main, argv in cases:
        assert main(argv) == 2, (main.__module__, argv)


# -- listen, end to end -------------------------------------------------------------------------------
def _listen(*args, stdin: bytes = b"", timeout: float = 300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmer_edge.listen", *args], input=stdin, capture_output=True,
                          timeout=timeout, env=env)


def _one_error_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(lines) == 1, err
    for word in expected:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (["--window", "0"], "1..256"), (["--window", "100000"], "1..256"), (["--threads", "0"], "1..64"),
    (["--threads", "512"], "1..64"), (["--max-seconds", "-1"], "> 0"), (["--max-seconds", "nan"], "finite"),
    (["--realtime"], "--realtime needs --input"),
])
def test_listen_bad_arguments(argv, expected):
    _one_error_line(_listen(*argv), expected)


@pytest.fixture(scope="module")
def wav(tmp_path_factory, speech_clips):
    return speech_clips[0].path


def test_listen_device_cuda_without_a_gpu(tiny_bundle, wav):
    from cmer_edge import _native

    if _native.build_info().get("cuda") and _native.cuda_available():
        pytest.skip("this machine has a usable CUDA device: --device cuda is valid here")
    _one_error_line(_listen("--input", str(wav), "--bundle", str(tiny_bundle), "--device", "cuda", "--asr", "none"),
                    "--device cuda", "CUDA")


def test_listen_missing_asr_model(tiny_bundle, wav):
    _one_error_line(_listen("--input", str(wav), "--bundle", str(tiny_bundle), "--asr-model", "/nonexistent"),
                    "/nonexistent")


def _broken_bundle(tiny_bundle, tmp_path, change) -> str:
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    change(out, manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return str(out)


def _no_text_dim(out, m):
    del m["head"]["text_dim"]


def _window_not_int(out, m):
    m["window_utts"] = "sixteen"


def _corrupt_onnx(out, m):
    role = next(r for r, f in m["files"].items() if f.endswith(".onnx"))
    (out / m["files"][role]).write_bytes(b"\x08\x07not an onnx model")
    m["sha256"].pop(m["files"][role])


def _corrupt_audio_norm(out, m):
    (out / "audio_norm.safetensors").write_bytes(b"garbage, not safetensors")
    m["files"]["audio_norm"] = "audio_norm.safetensors"
    m["audio_norm"] = "speaker"


def _not_json(out, m):
    m.clear()
    m["format"] = "nope"


@pytest.mark.parametrize("change", [_no_text_dim, _window_not_int, _corrupt_onnx, _corrupt_audio_norm, _not_json])
def test_listen_broken_bundle_is_one_line_and_exit_2(change, tiny_bundle, wav, tmp_path):
    bundle = _broken_bundle(tiny_bundle, tmp_path, change)
    line = _one_error_line(_listen("--input", str(wav), "--bundle", bundle, "--asr", "external"))
    assert "bundle" in line
    done = _listen("--input", str(wav), "--bundle", bundle, "--asr", "external", "-v")
    assert done.returncode == 2 and "Traceback" in done.stderr.decode()  # -v shows it


@pytest.fixture(scope="module")
def audio_only_bundle(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.bundle import save_bundle
    from cmer_edge.model.cm_roberta import CMRoberta
    from cmer_edge.model.config import HeadConfig

    torch.manual_seed(1)
    spec = make_audio_extractor("opensmile.eGeMAPSv02").spec()
    cfg = HeadConfig(audio_dim=spec["dim"], text_dim=1, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=16,
                     modalities="audio")
    model = CMRoberta(cfg).eval()
    path = tmp_path_factory.mktemp("audio_only") / "bundle"
    save_bundle(path, head_config=cfg, head_tensors={k: v.numpy() for k, v in model.state_dict().items()},
                manifest={"name": "audio-only-test", "profile": "test", "window_utts": 4, "protocol": "live",
                          "features": {"audio": spec}})
    return path


def test_audio_only_bundle_with_external_text_runs(audio_only_bundle, wav):
    done = _listen("--input", str(wav), "--bundle", str(audio_only_bundle), "--asr", "external", "--json",
                   stdin=b"ignored text\n")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "AttributeError" not in err and "uses no text" in err
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert events and all(e["modalities"] == ["audio"] for e in events)


def test_listen_into_head_exits_quietly(tiny_bundle, dialogue_wav):
    path, _ = dialogue_wav
    cmd = (f"{sys.executable} -m cmer_edge.listen --input {path} --bundle {tiny_bundle} --asr none --json "
           "2>stderr.txt | head -1; echo ${PIPESTATUS[0]} > rc.txt")
    cwd = os.getcwd()
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=300, cwd=str(path.parent))
    assert done.returncode == 0 and len(done.stdout.decode().splitlines()) == 1
    json.loads(done.stdout.decode())
    err = (path.parent / "stderr.txt").read_text()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert (path.parent / "rc.txt").read_text().strip() == "141"  # as `yes | head -1`
    assert os.getcwd() == cwd


def test_sigint_prints_the_summary_and_exits_130(tiny_bundle, speech_clips, tmp_path):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.testing.scenes import write_scene

    # 12 utterances, tens of seconds played in real time: a loaded machine may hand out the first event late,
    # but never so late that the whole file is done before the signal arrives
    clips = [(c.text, load_audio(c.path)) for c in speech_clips[:3]] * 4
    path = tmp_path / "long_dialogue.wav"
    write_scene(path, clips, [0.6] + [1.4] * (len(clips) - 1), noise_dbfs=-60)
    proc = subprocess.Popen([sys.executable, "-m", "cmer_edge.listen", "--input", str(path), "--realtime", "--bundle",
                             str(tiny_bundle), "--asr", "none", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # the first event: the recognizer is running
        assert json.loads(first)["utterance_id"] == 0
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "summary" in err and "Traceback" not in err


# -- the offline CLIs ---------------------------------------------------------------------------------
def _header_only_meld(root):
    from cmer_edge.data.meld import CSV_COLUMNS

    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        (root / f"{split}_sent_emo.csv").write_text(",".join(CSV_COLUMNS) + "\n")
    return root


def test_evaluate_on_a_header_only_csv(tiny_bundle, tmp_path, capsys):
    from cmer_edge.evaluate import main

    root = _header_only_meld(tmp_path / "meld")
    assert main(["--bundle", str(tiny_bundle), "--meld-dir", str(root), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no labelled utterances" in err and "Traceback" not in err


def test_extract_on_an_empty_corpus(tmp_path, capsys):
    from cmer_edge.extract import main

    root = _header_only_meld(tmp_path / "meld")
    store = tmp_path / "store"
    assert main(["meld", "--root", str(root), "--store", str(store), "--splits", "test", "--text",
                 "sentence-transformers/all-MiniLM-L6-v2"]) == 2
    err = capsys.readouterr().err
    assert "error: nothing to extract: no utterances in test" in err
    assert not (store / "manifest.json").exists()  # no empty store left behind


def test_extract_missing_corpus(tmp_path, capsys):
    from cmer_edge.extract import main

    assert main(["meld", "--root", str(tmp_path / "absent"), "--store", str(tmp_path / "s"), "--text", "x"]) == 2
    assert "error:" in capsys.readouterr().err


def test_evaluate_missing_store(tiny_bundle, tmp_path, capsys):
    from cmer_edge.evaluate import main

    assert main(["--bundle", str(tiny_bundle), "--store", str(tmp_path / "none")]) == 2
    assert "error:" in capsys.readouterr().err and np is not None


def test_evaluate_negative_warmup_clips_is_a_usage_error(capsys):
    """One line naming the value, exit 2 (it was a traceback from clip_eval)."""
    from cmer_edge.evaluate import main

    assert main(["--manifest", "m.csv", "--warmup-clips", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--warmup-clips must be in 0..1000, got -1" in err and "Traceback" not in err
