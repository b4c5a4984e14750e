"""The compiled core is importable and reports what it contains; the package CLI prints it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cmer_edge import __version__, _native


def test_build_info_fields():
    info = _native.build_info()
    assert info["version"] == __version__
    assert isinstance(info["cuda"], bool)
    assert info["compiler"].split()[0] in {"GNU", "Clang", "AppleClang", "MSVC"}
    if info["cuda"]:
        assert all(a.isdigit() for a in info["cuda_arch"].split(","))
        assert info["cuda_compiler"][0].isdigit()
    else:
        assert info["cuda_arch"] is None and info["cuda_compiler"] is None
    assert info["tensorrt"] is None or info["tensorrt"][0].isdigit()
    assert isinstance(_native.cuda_available(), bool)
    assert not _native.cuda_available() or info["cuda"]


def test_cuda_op_without_gpu_says_why():
    if _native.cuda_available():
        pytest.skip("a CUDA device is usable here; the no-GPU message cannot be observed")
    import numpy as np

    x = np.zeros((1, 2, 3), np.float32)
    w_ih, w_hh, b = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32), np.zeros(8, np.float32)
    with pytest.raises(RuntimeError, match="CMER_EDGE_CUDA=ON|no CUDA device"):
        _native.lstm_layer(x, np.array([2], np.int32), w_ih, w_hh, b, b, device="cuda")


def test_package_main_prints_info_and_subcommands():
    out = subprocess.run([sys.executable, "-m", "cmer_edge", "--json"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["version"] == __version__
    assert info["native"]["cuda"] == _native.build_info()["cuda"]
    text = subprocess.run([sys.executable, "-m", "cmer_edge"], capture_output=True, text=True, check=True).stdout
    assert f"cmer_edge {__version__}" in text and "subcommands" in text


def test_importing_the_package_does_not_import_torch():
    code = "import cmer_edge, cmer_edge.audio.convert, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
