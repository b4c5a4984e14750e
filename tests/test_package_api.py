"""The package face: the public names import lazily and torch-free; one `python -m cmer_edge`
dispatcher lists and runs every command; each user-facing command has a console script."""

from __future__ import annotations

import subprocess
import sys
import re
from pathlib import Path

import pytest

import cmer_edge
from cmer_edge.commands import COMMANDS, resolve

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["Recognizer", "RecognizerConfig", "EmotionEvent", "FileSource", "MicrophoneSource", "ArraySource",
          "load_bundle"]


def test_public_names_are_lazy_and_torch_free():
    code = ("import sys, cmer_edge; before = set(sys.modules); "
            f"from cmer_edge import {', '.join(PUBLIC)}; "
            "print('runtime' in ' '.join(before), 'torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
    assert set(PUBLIC) <= set(cmer_edge.__all__) and set(PUBLIC) <= set(dir(cmer_edge))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cmer_edge.nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_resolves_to_a_main(name):
    assert callable(resolve(name))


def test_dispatcher_lists_and_runs_commands():
    listing = subprocess.run([sys.executable, "-m", "cmer_edge", "--help"], capture_output=True, text=True,
                             check=True).stdout
    assert all(name in listing for name in COMMANDS)
    out = subprocess.run([sys.executable, "-m", "cmer_edge", "pack", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "usage:" in out and "--half-head" in out


def test_console_scripts_point_at_commands():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([^"]+)"', section, re.M))
    targets = {target for target, _ in COMMANDS.values()}
    assert scripts["cmer-edge"] == "cmer_edge.__main__:main"
    for script, target in scripts.items():
        assert script == "cmer-edge" or target in targets, script
    for name in ("listen", "extract", "train", "evaluate", "finetune", "export", "build-engine", "pack", "bench"):
        assert scripts[f"cmer-edge-{name}"] == COMMANDS[name][0]


def test_readme_test_command_is_the_ci_script():
    readme = (ROOT / "README.md").read_text()
    script = (ROOT / ".ci" / "run").read_text()
    assert "```bash\nbash .ci/run\n```" in readme
    torch_at, extras_at = script.index("pip install -q torch==2.13.0"), script.index('pip install -q ".[test]"')
    assert torch_at < extras_at and script.rstrip().endswith("python3 -m pytest")
    for package in ("espeak-ng", "ffmpeg", "libportaudio2", "pulseaudio", "systemd"):
        assert package in script and package in readme
