"""MELD clips (mp4, 48 kHz, 1..6 channels) -> 16 kHz mono float32 / WAV, with ffmpeg.

Policy for bad clips (docs/data.md): a clip is never allowed to stop a run. Each one ends with a
status: `extracted`, `done_before` (resumed: a complete output exists), `missing` (no file),
`empty` (0 bytes, or no decodable samples), `undecodable` (ffprobe/ffmpeg fail, no audio stream,
timeout, non-finite samples). Clips longer than `max_duration_s` are cut there and flagged `capped`.
Channels are averaged (as cmer_edge.audio.convert.to_mono does), not ffmpeg's downmix, which can
exceed full scale for 3.0 / 5.1 sources.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError, to_mono
from cmer_edge.data.meld import SPLITS, Dialogue, Utterance, iter_utterances, load_meld

log = logging.getLogger("cmer_edge")

STATUSES = ("extracted", "done_before", "missing", "empty", "undecodable")


@dataclass(frozen=True)
class ExtractConfig:
    """sample_rate_hz: output rate; max_duration_s: cap per clip; workers: parallel ffmpeg
    processes; overwrite: redo outputs that exist; timeout_s: per ffmpeg/ffprobe call."""

    sample_rate_hz: int = PIPELINE_RATE_HZ
    max_duration_s: float = 30.0
    workers: int = 2
    overwrite: bool = False
    timeout_s: float = 120.0
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

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
    source_duration_s: float | None  # as the container reports it (audio stream first)
    capped: bool


def require_ffmpeg(config: ExtractConfig = ExtractConfig()) -> None:
    missing = [tool for tool in (config.ffmpeg, config.ffprobe) if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found on PATH (apt-get install ffmpeg)")


def _run(cmd: list[str], path: Path, timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ClipError("undecodable", f"{path}: {Path(cmd[0]).name} timed out after {timeout_s:g} s") from None


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no message"


def probe_clip(path: str | Path, config: ExtractConfig = ExtractConfig()) -> dict:
    """{channels, sample_rate_hz, duration_s} of the first audio stream; ClipError if none."""
    path = Path(path)
    if not path.is_file():
        raise ClipError("missing", f"clip not found: {path}")
    if path.stat().st_size == 0:
        raise ClipError("empty", f"clip is empty (0 bytes): {path}")
    cmd = [config.ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=channels,sample_rate,duration:format=duration", "-of", "json", str(path)]
    proc = _run(cmd, path, config.timeout_s)
    if proc.returncode != 0:
        raise ClipError("undecodable", f"{path}: ffprobe failed: {_last_line(proc.stderr)}")
    info = json.loads(proc.stdout or b"{}")
    streams = info.get("streams") or []
    if not streams:
        raise ClipError("undecodable", f"{path}: no audio stream")
    stream = streams[0]
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    try:
        duration_s = float(duration) if duration not in (None, "N/A") else None
    except ValueError:
        duration_s = None
    return {"channels": int(stream.get("channels") or 1),
            "sample_rate_hz": int(stream.get("sample_rate") or 0), "duration_s": duration_s}


def decode_clip(path: str | Path, config: ExtractConfig = ExtractConfig()) -> DecodedClip:
    """Decode a clip's first audio stream to float32 mono at config.sample_rate_hz, capped at
    config.max_duration_s. Raises ClipError (kind missing / empty / undecodable)."""
    path = Path(path)
    info = probe_clip(path, config)
    channels, rate = info["channels"], config.sample_rate_hz
    cmd = [config.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", f"{config.max_duration_s:.6f}", "-ar", str(rate),
           "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    proc = _run(cmd, path, config.timeout_s)
    if proc.returncode != 0:
        raise ClipError("undecodable", f"{path}: ffmpeg failed: {_last_line(proc.stderr)}")
    raw = np.frombuffer(proc.stdout, dtype="<f4")
    frames = raw.size // channels
    if frames == 0:
        raise ClipError("empty", f"{path}: no audio samples decoded")
    samples = to_mono(raw[: frames * channels].reshape(frames, channels))
    if not np.isfinite(samples).all():
        raise ClipError("undecodable", f"{path}: decoded audio holds non-finite samples")
    cap_frames = int(round(config.max_duration_s * rate))
    source_s = info["duration_s"]
    capped = source_s > config.max_duration_s + 1e-3 if source_s is not None else frames >= cap_frames - 1
    return DecodedClip(np.ascontiguousarray(samples[:cap_frames], dtype=np.float32), rate, channels,
                       info["sample_rate_hz"], source_s, bool(capped))


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
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    sf.write(str(part), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    os.replace(part, path)  # atomic: an output that exists is complete


def _done_before(source: Path, output: Path, config: ExtractConfig) -> ClipResult | None:
    import soundfile as sf

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
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        results = tuple(pool.map(lambda job: extract_clip(job[0], job[1], config), jobs))
    report = ExtractReport(results, config)
    for r in report.failed:
        log.warning("skipped clip (%s): %s", r.status, r.error)
    for r in report.capped:
        log.warning("capped clip at %.1f s: %s (source %s s)", config.max_duration_s, r.source, r.source_duration_s)
    log.info("audio extraction: %s", report.summary())
    return report


def wav_path(out_dir: str | Path, utt: Utterance) -> Path:
    """Where extract_meld_audio puts an utterance's WAV: OUT/{split}/dia{D}_utt{U}.wav."""
    return Path(out_dir) / utt.split / f"{utt.clip_name}.wav"


def extract_meld_audio(dialogues: Iterable[Dialogue], out_dir: str | Path,
                       config: ExtractConfig = ExtractConfig()) -> ExtractReport:
    """Every utterance's clip -> OUT/{split}/dia{D}_utt{U}.wav; resumable; bad clips reported."""
    utts = list(iter_utterances(list(dialogues)))
    no_clip = [u for u in utts if u.audio_path is None]
    if no_clip:
        splits = sorted({u.split for u in no_clip})
        raise ValueError(f"{len(no_clip)} utterances have no audio_path: the MELD root has no clip folder "
                         f"for split(s) {splits} (train_splits/, dev_splits_complete/, output_repeated_splits_test/)")
    return extract_clips(((u.audio_path, wav_path(out_dir, u)) for u in utts), config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.data.meld_audio",
        description="Extract MELD clip audio with ffmpeg to 16 kHz mono WAV (resumable, bad clips reported).",
        epilog="example: python -m cmer_edge.data.meld_audio ~/MELD.Raw ~/meld_wav --splits dev --workers 2",
    )
    parser.add_argument("root", type=Path, help="MELD.Raw root (CSVs + clip folders)")
    parser.add_argument("out_dir", type=Path, help="output folder: OUT/{split}/dia{D}_utt{U}.wav")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--workers", type=int, default=ExtractConfig.workers)
    parser.add_argument("--max-duration-s", type=float, default=ExtractConfig.max_duration_s)
    parser.add_argument("--sample-rate-hz", type=int, default=ExtractConfig.sample_rate_hz)
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = ExtractConfig(sample_rate_hz=args.sample_rate_hz, max_duration_s=args.max_duration_s,
                           workers=args.workers, overwrite=args.overwrite)
    splits = load_meld(args.root, tuple(args.splits))
    report = extract_meld_audio([d for s in args.splits for d in splits[s]], args.out_dir, config)
    path = report.write_json(args.out_dir / "extract_report.json")
    print(f"{report.summary()}; report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
