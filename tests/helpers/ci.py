"""CI honesty: a missing prerequisite skips with a reason locally and fails under CI=true."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) unless `condition`."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str, hint: str = ""):
    """Import `name` or skip (fail under CI), like pytest.importorskip but honest in CI."""
    need(importlib.util.find_spec(name) is not None,
         f"{name} is not installed" + (f" ({hint})" if hint else ""))
    return importlib.import_module(name)


def find_nvcc() -> str | None:
    """nvcc from $CUDACXX, PATH or /usr/local/cuda/bin; None when there is none."""
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
