"""A pretrained speaker encoder as an audio front end, screened with the linear model (issue 11, stop 34).

Not part of the package. Resemblyzer (PyPI `resemblyzer` 0.1.4, Apache-2.0) ships the weights of a GE2E
speaker encoder (3-layer LSTM over 40 mel bands, 256 units; trained on LibriSpeech, VoxCeleb 1 and 2)
inside its wheel, so it installs offline: `pip install --no-deps resemblyzer==0.1.4`. Only the weights
file is read here; the network (nn.LSTM + nn.Linear) and the mel front end are written out below after
its hparams (25-ms window, 10-ms hop, 40 mel bands, power spectrum, -30 dBFS volume).

Each clip is cut to the span the live segmenter hands on (`front_end_screen.py spans`), as since stop 32,
then three blocks are written, each an npz for `front_end_screen.py linear --features`:

    python docs/experiments/speaker_encoder_screen.py --spans runs/s32/spans.npz --out runs/s34/rz
    # -> runs/s34/rz_dvec.npz (the speaker embedding, 256), rz_top.npz (mean + std of the top layer's
    #    states over frames, 512), rz_low.npz (the same for the first layer, 512)
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache_s32          # as shipped
    python docs/experiments/front_end_screen.py linear --features runs/s34/rz_top.npz
    python docs/experiments/front_end_screen.py linear --features runs/s34/rz_top.npz --with-cache \
        --cache runs/edge_cache_s32
"""

from __future__ import annotations

import argparse
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from cmer_edge.audio.convert import load_audio
from cmer_edge.data.speech_manifest import load_manifests

MANIFESTS = [Path("../shared/data") / c for c in ("ravdess", "savee", "emodb")]
SR, N_FFT, HOP, N_MELS, TARGET_DBFS = 16000, 400, 160, 40, -30.0
# the package itself is not imported (its __init__ needs webrtcvad, a C build); only its weights file
WEIGHTS = Path(find_spec("resemblyzer").submodule_search_locations[0]) / "pretrained.pt"


class SpeakerEncoder(torch.nn.Module):
    """Resemblyzer's stacked LSTM, loaded as three one-layer LSTMs so that each layer's states are visible."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.LSTM(n, 256, batch_first=True) for n in (N_MELS, 256, 256))
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(WEIGHTS, map_location="cpu")["model_state"]
        mine = {f"linear.{k}": state[f"linear.{k}"] for k in ("weight", "bias")}
        for k in range(3):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                mine[f"layers.{k}.{name}_l0"] = state[f"lstm.{name}_l{k}"]
        self.load_state_dict(mine)
        self.eval()

    @torch.no_grad()
    def blocks(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        states, x = [], torch.from_numpy(mel)[None]
        for layer in self.layers:
            x, (h, _) = layer(x)
            states.append(x[0])
        dvec = torch.relu(self.linear(h[-1, 0]))
        stats = lambda s: torch.cat([s.mean(0), s.std(0)]).numpy()  # noqa: E731
        return {"dvec": (dvec / dvec.norm().clamp_min(1e-8)).numpy(), "top": stats(states[2]),
                "low": stats(states[0])}


def mel_power(audio: np.ndarray) -> np.ndarray:
    import librosa

    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    audio = audio * 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
    return librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=N_FFT, hop_length=HOP,
                                          n_mels=N_MELS).astype(np.float32).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=Path, required=True, help="an npz from `front_end_screen.py spans`")
    ap.add_argument("--out", type=Path, required=True, help="prefix: writes PREFIX_dvec/_top/_low.npz")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clips = load_manifests(MANIFESTS, check_audio=False).clips
    spans = np.load(args.spans)["spans"]
    encoder = SpeakerEncoder()
    out: dict[str, list[np.ndarray]] = {"dvec": [], "top": [], "low": []}
    for i, clip in enumerate(clips):
        audio = load_audio(clip.path)
        if spans[i, 2] > 0:
            audio = audio[int(round(spans[i, 0] * SR)):int(round(spans[i, 1] * SR))]
        for name, block in encoder.blocks(mel_power(audio)).items():
            out[name].append(block)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, rows in out.items():
        x = np.stack(rows).astype(np.float32)
        np.savez(f"{args.out}_{name}.npz", x_a=x, audio_ok=np.isfinite(x).all(1))


if __name__ == "__main__":
    main()
