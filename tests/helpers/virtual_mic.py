"""A real PortAudio input device fed from WAV files, for capture tests.

A private PulseAudio server with a null sink `vsink`; the sink's monitor is the default source
(PULSE_SOURCE=vsink.monitor), so PortAudio's ALSA `pulse` device records whatever
`paplay --device=vsink file.wav` plays. Works as root and without D-Bus.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REQUIRED_TOOLS = ("pulseaudio", "paplay", "pactl")
SINK = "vsink"
SINK_RATE_HZ = 48_000


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


@dataclass
class VirtualMic:
    runtime_dir: Path
    device: str = "pulse"  # the PortAudio (ALSA plugin) device name to open

    def play(self, wav: str | Path) -> subprocess.Popen:
        """Start playing `wav` into the sink; the caller waits on the returned process."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(wav)], env=os.environ.copy())


def start_virtual_mic() -> tuple[VirtualMic, dict[str, str | None]]:
    """Start the private server; returns the mic and the env values to restore afterwards."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="cmer_edge_pulse_"))
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SOURCE", "PULSE_SERVER")}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    os.environ["PULSE_SOURCE"] = f"{SINK}.monitor"
    os.environ.pop("PULSE_SERVER", None)
    cmd = [
        "pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--log-target=stderr",
        "--load=module-native-protocol-unix",
        f"--load=module-null-sink sink_name={SINK} rate={SINK_RATE_HZ} channels=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"pulseaudio failed to start (rc={proc.returncode}): {proc.stderr.strip()[-500:]}")
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("pulseaudio started but `pactl info` cannot reach it within 10 s")
        time.sleep(0.1)
    return VirtualMic(runtime_dir), saved


def stop_virtual_mic(mic: VirtualMic, saved: dict[str, str | None]) -> None:
    subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=30)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(mic.runtime_dir, ignore_errors=True)
