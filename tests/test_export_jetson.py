"""jetson/ deployment files: the systemd units verify with systemd-analyze, the build script
parses, the container pins its L4T base and builds for sm_87."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.ci import need

JETSON = Path(__file__).resolve().parents[1] / "jetson"


def test_systemd_units_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze is not installed (apt-get install systemd)")
    units = sorted((JETSON / "systemd").glob("cmer-edge-*.s*"))
    assert {u.name for u in units} == {"cmer-edge-listen.service", "cmer-edge-events.socket",
                                       "cmer-edge-events@.service", "cmer-edge-serve.service",
                                       "cmer-edge-kiosk.service"}
    for unit in units:
        shutil.copy(unit, tmp_path / unit.name)
    out = subprocess.run([tool, "verify", "--man=no", *[str(tmp_path / u.name) for u in units]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    listen = (JETSON / "systemd/cmer-edge-listen.service").read_text()
    for line in ("Restart=on-failure", "ExecStart=/usr/bin/python3 -m cmer_edge.listen $CMER_EDGE_LISTEN_ARGS",
                 "StandardOutput=append:/var/log/cmer_edge/events.jsonl", "EnvironmentFile=/etc/default/cmer-edge",
                 "ExecStartPre=/usr/bin/python3 -m cmer_edge.runtime.backends ${CMER_EDGE_BUNDLE}"):
        assert line in listen.splitlines(), line


def test_systemd_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a wrong restart policy and a missing binary are reported."""
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze is not installed (apt-get install systemd)")
    text = (JETSON / "systemd/cmer-edge-listen.service").read_text()
    bad = tmp_path / "bad.service"
    text = text.replace("Restart=on-failure", "Restart=sometimes")
    bad.write_text(text.replace("/usr/bin/python3 -m cmer_edge.listen", "/nonexistent/python3 -m x"))
    out = subprocess.run([tool, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60)
    assert "sometimes" in out.stderr and "/nonexistent/python3" in out.stderr


def test_build_script_and_dockerfile():
    assert subprocess.run(["bash", "-n", str(JETSON / "build.sh")]).returncode == 0
    help_text = subprocess.run(["bash", str(JETSON / "build.sh"), "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--bundle" in help_text.stdout
    docker = (JETSON / "Dockerfile").read_text()
    base = next(line for line in docker.splitlines() if line.startswith("ARG L4T_BASE="))
    assert base == "ARG L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0"  # pinned, never :latest
    assert "CUDAARCHS=87" in docker and "CMER_EDGE_CUDA=ON" in docker
    assert 'python3 -m pip install ".[mic,asr]"' in docker
    readme = (JETSON / "README.md").read_text()
    for needle in ("| **6.1** | **R36.4.0** |", "nvpmodel", "jetson_clocks", "tegrastats",
                   "CMER_EDGE_CUDA=ON CUDAARCHS=87 python3 -m pip install", "export/build_engine.py"):
        assert needle in readme, needle
