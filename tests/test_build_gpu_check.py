"""jetson/gpu_check.sh --dry-run: every step of the one-shot GPU check up to the first GPU call.

Default run (~40 s): the script's plumbing with the package as this checkout has it (--no-install):
stage JSON + log files as it goes, the head's import path with opensmile / soundfile / faster-whisper /
TensorRT / Silero blocked, the cuda tests collected, a tiny CPU bench, summary.json. Marked slow
(~3 min at -j1 here): the full dry run, which also builds and installs _native with CUDA for sm_87
into a venv (--no-deps --no-build-isolation --no-index) and checks the installed build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cmer_edge
from helpers.ci import find_nvcc

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "jetson" / "gpu_check.sh"


def _run(args: list[str], env_extra: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


def _stages(out: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["stage"]: json.loads(p.read_text()) for p in sorted(out.glob("[0-9][0-9]-*.json"))}


def test_dry_run_without_install_checks_the_plumbing(tmp_path):
    out = tmp_path / "out"
    package_root = Path(cmer_edge.__file__).resolve().parents[1]  # the tree this run tests, source or installed
    done = _run(["--dry-run", "--no-install", "--out", str(out), "--python", sys.executable],
                {"PYTHONPATH": str(package_root)})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    stages = _stages(out)
    assert list(stages) == ["env", "build", "import", "tests", "bench-edge", "tensorrt"]
    for name in ("env", "import", "tests", "bench-edge"):
        assert stages[name]["status"] == "ok" and stages[name]["dry_run"], stages[name]
        assert (out / f"{sorted(out.glob(f'*-{name}.log'))[0].name}").read_text()
    assert stages["build"]["status"].startswith("skipped: --no-install")
    assert stages["tensorrt"]["status"] == "skipped: dry run"
    assert "nvidia_smi" not in stages["env"]["result"]  # no GPU call in a dry run
    imported = stages["import"]["result"]
    assert "cuda_available" not in imported and "opensmile" in imported["blocked"]
    assert imported["package"].startswith(str(package_root))
    rows = stages["bench-edge"]["result"]["rows"]
    assert {(r["impl"], r["op"]) for r in rows} >= {("native", "push"), ("torch-cached", "push")}
    assert all("error" not in r for r in rows), rows
    assert "tests/test_head_cuda.py::" in (out / "04-tests.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and [s["stage"] for s in summary["stages"]] == list(stages)


def test_bad_arguments_exit_2(tmp_path):
    done = _run(["--bogus"])
    assert done.returncode == 2 and "unknown option: --bogus" in done.stderr
    done = _run(["--dry-run", "--stages", "env,gpu", "--out", str(tmp_path)])
    assert done.returncode == 2 and "unknown stage 'gpu'" in done.stderr


@pytest.mark.slow
def test_full_dry_run_builds_and_installs_the_cuda_extension(tmp_path):
    if find_nvcc() is None:
        pytest.skip("nvcc not found: the dry run's CUDA build is not possible here")
    out = tmp_path / "out"
    done = _run(["--dry-run", "--out", str(out), "--jobs", "2", "--arch", "87"], timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    stages = _stages(out)
    assert stages["build"]["status"] == "ok"
    imported = stages["import"]["result"]
    assert imported["cuda"] is True and str(imported["cuda_arch"]) == "87"
    assert imported["package"].startswith(str(out / "venv"))
