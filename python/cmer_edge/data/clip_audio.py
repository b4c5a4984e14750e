"""Audio of video/audio clips (MELD's mp4: 48 kHz, 1..6 channels) -> 16 kHz mono float32 / WAV, with ffmpeg.

Policy for bad clips (docs/data.md): a clip is never allowed to stop a run. Each one ends with a
status: `extracted`, `done_before` (resumed: a complete output exists), `missing` (no file),
`empty` (0 bytes, or no decodable samples), `undecodable` (ffmpeg fails, no audio stream,
timeout, non-finite samples). Clips longer than `max_duration_s` are cut there and flagged `capped`.
Channels are averaged (as cmer_edge.audio.convert.to_mono does), not ffmpeg's downmix, which can
exceed full scale for 3.0 / 5.1 sources.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError, to_mono

log = logging.getLogger("cmer_edge")

STATUSES = ("extracted", "done_before", "missing", "empty", "undecodable")
_DURATION = re.compile(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO_RATE = re.compile(rb"Stream #0:\d+[^\n]*?: Audio: [^\n]*?(\d+) Hz")


@dataclass(frozen=True)
class ExtractConfig:
    """sample_rate_hz: output rate; max_duration_s: cap per clip; workers: parallel ffmpeg
    processes; overwrite: redo outputs that exist; timeout_s: per ffmpeg run."""

    sample_rate_hz: int = PIPELINE_RATE_HZ
    max_duration_s: float = 30.0
    workers: int = 2
    overwrite: bool = False
    timeout_s: float = 120.0
    ffmpeg: str = "ffmpeg"

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate_hz, int) or self.sample_rate_hz < 1000:
            raise ValueError(f"ExtractConfig.sample_rate_hz must be an int >= 1000, got {self.sample_rate_hz!r}")
        if not self.max_duration_s > 0:
            raise ValueError(f"ExtractConfig.max_duration_s must be > 0, got {self.max_duration_s!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"ExtractConfig.workers must be a positive int, got {self.workers!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"ExtractConfig.timeout_s must be > 0, got {self.timeout_s!r}")


class ClipError(AudioError):
    """A clip that yields no audio; `kind` is "missing", "empty" or "undecodable"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class DecodedClip:
    samples: np.ndarray  # float32 mono at sample_rate_hz, at most max_duration_s long
    sample_rate_hz: int
    source_channels: int
    source_rate_hz: int
    source_duration_s: float | None  # the container's Duration, as ffmpeg reports it
    capped: bool


def require_ffmpeg(config: ExtractConfig = ExtractConfig()) -> None:
    """RuntimeError naming the missing tool, before any clip is tried."""
    if shutil.which(config.ffmpeg) is None:
        raise RuntimeError(f"{config.ffmpeg} not found on PATH (apt-get install ffmpeg)")


def _run(cmd: list[str], path: Path, timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ClipError("undecodable", f"{path}: {Path(cmd[0]).name} timed out after {timeout_s:g} s") from None


def _last_line(stderr: bytes) -> str:
    return ([ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()] or ["no message"])[-1]


def _parse_wav(buf: bytes, path: Path) -> tuple[np.ndarray, int]:
    """ffmpeg's piped float WAV -> (interleaved samples, channels); sizes in a piped header are
    placeholders, so the data chunk runs to the end of the buffer."""
    if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise ClipError("undecodable", f"{path}: ffmpeg wrote no WAV stream")
    pos, channels = 12, 0
    while pos + 8 <= len(buf):
        chunk, size = buf[pos:pos + 4], int.from_bytes(buf[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(buf[pos + 10:pos + 12], "little")
        elif chunk == b"data" and channels > 0:
            return np.frombuffer(buf, "<f4", count=(len(buf) - pos - 8) // 4, offset=pos + 8), channels
        pos += 8 + size + (size & 1)
    raise ClipError("empty", f"{path}: no audio samples decoded")


def _source_info(stderr: bytes) -> tuple[float | None, int]:
    """Container duration (s) and the first audio stream's rate, from ffmpeg's input summary."""
    duration = _DURATION.search(stderr)
    rate = _AUDIO_RATE.search(stderr)
    seconds = None if duration is None else (
        int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)))
    return seconds, int(rate.group(1)) if rate else 0


def decode_clip(path: str | Path, config: ExtractConfig = ExtractConfig()) -> DecodedClip:
    """Decode a clip's first audio stream to float32 mono at config.sample_rate_hz, capped at
    config.max_duration_s, in one ffmpeg run. Raises ClipError (kind missing / empty / undecodable).
    `capped` is measured: ffmpeg decodes 0.25 s past the cap and the clip is capped if audio is there."""
    path = Path(path)
    if not path.is_file():
        raise ClipError("missing", f"clip not found: {path}")
    if path.stat().st_size == 0:
        raise ClipError("empty", f"clip is empty (0 bytes): {path}")
    rate = config.sample_rate_hz
    cmd = [config.ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
           "-vn", "-sn", "-dn", "-t", f"{config.max_duration_s + 0.25:.6f}", "-ar", str(rate),
           "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    proc = _run(cmd, path, config.timeout_s)
    if b"matches no streams" in proc.stderr:
        raise ClipError("undecodable", f"{path}: no audio stream")
    if proc.returncode != 0:
        raise ClipError("undecodable", f"{path}: ffmpeg failed: {_last_line(proc.stderr).replace(f'{path}: ', '')}")
    raw, channels = _parse_wav(proc.stdout, path)
    frames = raw.size // channels
    if frames == 0:
        raise ClipError("empty", f"{path}: no audio samples decoded")
    samples = to_mono(raw[: frames * channels].reshape(frames, channels))
    if not np.isfinite(samples).all():
        raise ClipError("undecodable", f"{path}: decoded audio holds non-finite samples")
    cap_frames = int(round(config.max_duration_s * rate))
    source_s, source_rate = _source_info(proc.stderr)
    return DecodedClip(np.ascontiguousarray(samples[:cap_frames], dtype=np.float32), rate, channels,
                       source_rate, source_s, frames > cap_frames)


@dataclass(frozen=True)
class ClipResult:
    source: Path
    output: Path | None
    status: str  # one of STATUSES
    duration_s: float = 0.0  # of the output
    source_duration_s: float | None = None
    capped: bool = False
    error: str = ""


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    sf.write(str(part), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    os.replace(part, path)  # atomic: an output that exists is complete


def _done_before(source: Path, output: Path, config: ExtractConfig) -> ClipResult | None:
    if config.overwrite or not output.is_file():
        return None
    try:
        info = sf.info(str(output))
    except RuntimeError:
        return None  # unreadable leftover: redo it
    if info.frames == 0 or info.samplerate != config.sample_rate_hz:
        return None
    capped = info.frames >= int(round(config.max_duration_s * info.samplerate)) - 1
    return ClipResult(source, output, "done_before", info.frames / info.samplerate, capped=capped)


def extract_clip(source: Path, output: Path, config: ExtractConfig = ExtractConfig()) -> ClipResult:
    """One clip -> WAV at `output`; never raises for a bad clip (the status says what happened)."""
    done = _done_before(source, output, config)
    if done is not None:
        return done
    try:
        clip = decode_clip(source, config)
    except ClipError as exc:
        return ClipResult(source, None, exc.kind, error=str(exc))
    _write_wav(output, clip.samples, clip.sample_rate_hz)
    return ClipResult(source, output, "extracted", clip.samples.size / clip.sample_rate_hz,
                      clip.source_duration_s, clip.capped)


@dataclass(frozen=True)
class ExtractReport:
    results: tuple[ClipResult, ...]
    config: ExtractConfig

    def with_status(self, *statuses: str) -> tuple[ClipResult, ...]:
        return tuple(r for r in self.results if r.status in statuses)

    @property
    def ok(self) -> tuple[ClipResult, ...]:
        return self.with_status("extracted", "done_before")

    @property
    def failed(self) -> tuple[ClipResult, ...]:
        return self.with_status("missing", "empty", "undecodable")

    @property
    def capped(self) -> tuple[ClipResult, ...]:
        return tuple(r for r in self.results if r.capped)

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for r in self.results:
            counts[r.status] += 1
        return dict(counts, capped=len(self.capped))

    def summary(self) -> str:
        c = self.counts()
        return ", ".join(f"{k} {v}" for k, v in c.items()) + f" (of {len(self.results)} clips)"

    def to_dict(self) -> dict:
        def row(r: ClipResult) -> dict:
            return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(r).items()}

        return {"config": asdict(self.config), "counts": self.counts(),
                "failed": [row(r) for r in self.failed], "capped": [row(r) for r in self.capped]}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path


def extract_clips(jobs: Iterable[tuple[Path, Path]], config: ExtractConfig = ExtractConfig()) -> ExtractReport:
    """(source clip, output wav) pairs -> ExtractReport, `config.workers` ffmpeg runs at a time."""
    require_ffmpeg(config)
    jobs, results = list(jobs), []
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        for start in range(0, len(jobs), 500):  # batches, so long runs log progress
            results += pool.map(lambda job: extract_clip(job[0], job[1], config), jobs[start:start + 500])
            log.info("audio extraction: %d / %d clips", len(results), len(jobs))
    report = ExtractReport(tuple(results), config)
    for r in report.failed:
        log.warning("skipped clip (%s): %s", r.status, r.error)
    for r in report.capped:
        log.warning("capped clip at %.1f s: %s (source %s s)", config.max_duration_s, r.source, r.source_duration_s)
    log.info("audio extraction: %s", report.summary())
    return report
