"""Build variants: the CUDA sources compile for Jetson Orin (sm_87) and Hopper (sm_90) with the local
nvcc, and a CPU-only build works.

Object code only: nothing runs, so a broken kernel cannot land unnoticed on machines without a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.ci import find_nvcc, need

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("87", "90")


def test_cuda_sources_build_for_orin_and_hopper(tmp_path):
    nvcc = find_nvcc()
    need(nvcc is not None, "nvcc not found (PATH, CUDACXX, /usr/local/cuda/bin): CUDA compile check not possible here")
    build = tmp_path / "build"
    configure = [
        "cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja" if shutil.which("ninja") else "Unix Makefiles",
        "-DCMER_EDGE_CUDA=ON", "-DCMER_EDGE_PYTHON=OFF", f"-DCMAKE_CUDA_COMPILER={nvcc}",
        f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(ARCHS)}",
    ]
    done = subprocess.run(configure, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"cmer_edge: CUDA=ON arch={','.join(ARCHS)}" in done.stdout
    done = subprocess.run(["cmake", "--build", str(build), "--target", "cmer_edge_cuda", "-j", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    library = next(build.rglob("libcmer_edge_cuda.a"))
    cuobjdump = Path(nvcc).with_name("cuobjdump")
    if cuobjdump.is_file():
        listing = subprocess.run([str(cuobjdump), "--list-elf", str(library)], capture_output=True, text=True,
                                 check=True).stdout
        for arch in ARCHS:
            assert f"sm_{arch}" in listing, f"no sm_{arch} code in {library.name}:\n{listing}"


def test_cpu_only_build_keeps_names_and_says_how_to_rebuild(tmp_path):
    """CMER_EDGE_CUDA=OFF builds a working _native whose CUDA paths explain the rebuild."""
    import sys

    build = tmp_path / "build"
    configure = ["cmake", "-S", str(ROOT), "-B", str(build), "-DCMER_EDGE_CUDA=OFF",
                 f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    import pybind11

    configure.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
    done = subprocess.run(configure, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cmer_edge: CUDA=OFF arch=-" in done.stdout
    done = subprocess.run(["cmake", "--build", str(build), "--target", "_native", "-j", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    module_dir = next(build.rglob("_native*.so")).parent
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _native, numpy as np\n"
        "assert _native.build_info()['cuda'] is False and _native.cuda_available() is False\n"
        "z = np.zeros\n"
        "try:\n"
        "    _native.lstm_layer(z((1,2,3),'f4'), np.array([2]), z((8,3),'f4'), z((8,2),'f4'), z(8,'f4'), z(8,'f4'),"
        " device='cuda')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(module_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "rebuild with CMER_EDGE_CUDA=ON" in out.stdout


KERNEL_SOURCES = ("attention_cuda.cu", "elementwise_cuda.cu", "layer_norm_cuda.cu", "lstm_cuda.cu",
                  "packed_linear_cuda.cu")


def test_cuda_kernels_use_no_local_memory(tmp_path):
    """ptxas's report for sm_87 (the Orin target): every kernel has a 0-byte stack frame and no
    spills (arrays indexed only by compile-time indices stay in registers; e.g. PackedLinear's
    acc[kRows], the LSTM's per-direction parameters), and the LSTM kernel, launched with up to 1024
    threads, uses at most 64 registers per thread."""
    import re

    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, CUDACXX, /usr/local/cuda/bin): ptxas report not possible here")
    sources = [str(ROOT / "csrc" / "core" / name) for name in KERNEL_SOURCES]
    done = subprocess.run([nvcc, "-std=c++17", f"-I{ROOT / 'csrc'}", "--use_fast_math", "-arch=sm_87", "-Xptxas",
                           "-v", "-c", *sources], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    report = done.stdout + done.stderr  # ptxas -v writes to either, by version
    entries, current = [], None
    for line in report.splitlines():
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            current = [m.group(1), None, None, None, None]
            entries.append(current)
        elif current and (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill "
                                         r"loads", line)):
            current[1:4] = m.groups()
        elif current and (m := re.search(r"Used (\d+) registers", line)):
            current[4] = m.group(1)
    names = " ".join(e[0] for e in entries)
    for kernel in ("PackedLinearKernel", "LstmRecurrenceKernel", "AttentionKernel", "AddLayerNormKernel",
                   "NormaliseRowsKernel"):
        assert kernel in names, f"{kernel} missing from the ptxas report:\n{report[-3000:]}"
    for name, stack, stores, loads, registers in entries:
        assert (stack, stores, loads) == ("0", "0", "0"), f"{name}: {stack} B stack, {stores}/{loads} B spills"
        if "LstmRecurrenceKernel" in name:
            assert int(registers) <= 64, f"{name}: {registers} registers cannot run 1024 threads per block"
