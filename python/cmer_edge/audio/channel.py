"""What a microphone, a room and an amplifier do to a clip: gain, noise, reverberation, band limits.

Pure signal functions on 16 kHz float audio, used to write training copies of clips heard through
other channels (`cmer_edge.training.channel_copies`) and to measure how a bundle holds up under them
(docs/experiments/channel_robustness.py). A `Channel` is one fixed set of conditions (a speaker's
microphone and room); only the noise itself is drawn per clip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

SR = 16000


def active_level_db(x: np.ndarray, frame: int = 400) -> float:
    """The clip's active speech level: the 90th percentile of its 25-ms frame energies, dBFS."""
    frames = x[: len(x) // frame * frame].reshape(-1, frame).astype(np.float64)
    if not len(frames):
        return -120.0
    return float(np.percentile(10 * np.log10((frames ** 2).mean(1) + 1e-12), 90))


def apply_gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scaled by `db`; the converter clips at full scale, as a real one does."""
    return np.clip(x * 10 ** (db / 20), -1.0, 1.0)


def add_noise(x: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White or brown noise `snr_db` below the clip's active speech level."""
    if colour not in ("white", "brown"):
        raise ValueError(f"noise colour must be white or brown, got {colour!r}")
    n = rng.standard_normal(len(x))
    if colour == "brown":  # integrated white noise, its slow drift removed
        n = np.cumsum(n)
        n -= np.convolve(n, np.ones(400) / 400, "same")
    level = 10 ** (active_level_db(x) / 20)
    return x + n / (n.std() + 1e-12) * level * 10 ** (-snr_db / 20)


def reverberate(x: np.ndarray, rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: the direct sound plus an exponentially decaying noise tail (`rt60_s`),
    `drr_db` direct-to-reverberant; the result has the dry clip's power."""
    t = np.arange(max(1, int(rt60_s * SR))) / SR
    rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60_s)
    rir *= 10 ** (-drr_db / 20) / np.sqrt((rir ** 2).sum())
    rir[0] = 1.0
    y = fftconvolve(x, rir)[: len(x)]
    return y * np.sqrt((x ** 2).mean() / ((y ** 2).mean() + 1e-12))


def band_limit(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """A 4th-order Butterworth band-pass (a telephone: 300-3400 Hz)."""
    return sosfilt(butter(4, (low_hz, high_hz), btype="bandpass", fs=SR, output="sos"), x)


@dataclass(frozen=True)
class Channel:
    """One microphone / room / gain; None leaves that stage out."""

    gain_db: float = 0.0
    rt60_s: float | None = None
    drr_db: float = 3.0
    band_hz: tuple[float, float] | None = None
    noise_colour: str | None = None
    snr_db: float = 20.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.rt60_s:
            x = reverberate(x, self.rt60_s, self.drr_db, rng)
        if self.band_hz:
            x = band_limit(x, *self.band_hz)
        if self.noise_colour:
            x = add_noise(x, self.snr_db, self.noise_colour, rng)
        return apply_gain(x, self.gain_db)

    def describe(self) -> dict:
        """The stages this channel applies, with their settings."""
        used = {"gain_db": True, "rt60_s": bool(self.rt60_s), "drr_db": bool(self.rt60_s),
                "band_hz": bool(self.band_hz), "noise_colour": bool(self.noise_colour), "snr_db": bool(self.noise_colour)}
        return {k: v for k, v in asdict(self).items() if used[k]}

    @staticmethod
    def drawn(rng: np.random.Generator, *, band_limits: bool = False) -> Channel:
        """A random everyday channel: gain -15..+10 dB; a room (RT60 0.2-0.8 s, 0-10 dB DRR) half
        the time; noise (white or brown, 5-30 dB SNR) two times in three; with `band_limits`, a
        small or cheap microphone's band (100-250 Hz to 4-7 kHz) one time in three (drawn last, so
        the other draws are the same either way). Never a telephone band (300-3400 Hz: kept unseen,
        to measure a channel the copies never showed)."""
        room = rng.random() < 0.5
        noisy = rng.random() < 2 / 3
        channel = Channel(gain_db=float(rng.uniform(-15, 10)),
                          rt60_s=float(rng.uniform(0.2, 0.8)) if room else None,
                          drr_db=float(rng.uniform(0, 10)),
                          noise_colour=str(rng.choice(["white", "brown"])) if noisy else None,
                          snr_db=float(rng.uniform(5, 30)))
        if band_limits and rng.random() < 1 / 3:
            channel = replace(channel, band_hz=(float(rng.uniform(100, 250)), float(rng.uniform(4000, 7000))))
        return channel
