"""PortAudio input devices: listing, selection by index or name, and the errors a CLI turns into
exit code 2 (`NoInputDeviceError` carries the device list to print)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_sample_rate_hz: int
    is_default: bool = False

    def describe(self) -> str:
        mark = "*" if self.is_default else " "
        return (f"{mark} {self.index:3d}  {self.name}  ({self.hostapi}, {self.max_input_channels} in, "
                f"{self.default_sample_rate_hz} Hz)")


class AudioDeviceError(RuntimeError):
    """A PortAudio input device failed (could not open, or kept failing after reopen attempts)."""


class NoInputDeviceError(AudioDeviceError):
    """No usable input device: none present, or the requested one is missing or ambiguous.

    `devices` holds the input devices that do exist, so a CLI can list them and exit 2:

        except NoInputDeviceError as exc:
            print(exc)            # the reason and the device table
            return 2
    """

    def __init__(self, devices: list[InputDevice], requested: int | str | None = None, reason: str = "") -> None:
        self.devices = list(devices)
        self.requested = requested
        self.reason = reason or ("no audio input device found" if requested is None
                                 else f"input device {requested!r} not found")
        super().__init__(f"{self.reason}\n{format_devices(self.devices)}")


def format_devices(devices: list[InputDevice]) -> str:
    if not devices:
        return "available input devices: none"
    return "available input devices (* = default):\n" + "\n".join(d.describe() for d in devices)


def import_sounddevice():
    """sounddevice, or NoInputDeviceError saying why capture is impossible here."""
    try:
        import sounddevice
    except ImportError as exc:
        raise NoInputDeviceError([], reason=f"sounddevice is not installed (pip install 'cmer_edge[mic]'): {exc}") from exc
    except OSError as exc:  # the PortAudio shared library is missing
        raise NoInputDeviceError([], reason=f"PortAudio library not found (apt-get install libportaudio2): {exc}") from exc
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """All PortAudio devices with at least one input channel, the default one marked."""
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    try:
        default_in = int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        default_in = -1
    if default_in < 0:
        try:
            default_in = int(sd.query_devices(kind="input")["index"])
        except (sd.PortAudioError, ValueError):
            default_in = -1
    out = []
    for info in sd.query_devices():
        if info["max_input_channels"] < 1:
            continue
        out.append(InputDevice(
            index=int(info["index"]), name=str(info["name"]), hostapi=str(hostapis[info["hostapi"]]["name"]),
            max_input_channels=int(info["max_input_channels"]),
            default_sample_rate_hz=int(round(info["default_samplerate"])), is_default=int(info["index"]) == default_in,
        ))
    return out


def resolve_input_device(device: int | str | None) -> InputDevice:
    """None: the default input (else the first input device); int: that PortAudio index; str: the
    device with exactly that name, else the one whose name contains it (case-insensitive)."""
    devices = list_input_devices()
    if not devices:
        raise NoInputDeviceError(devices, device)
    if device is None:
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise ValueError(f"device must be None, an index or a name, got {device!r}")
    if isinstance(device, int):
        match = [d for d in devices if d.index == device]
        if not match:
            raise NoInputDeviceError(devices, device, f"input device index {device} does not exist or has no inputs")
        return match[0]
    exact = [d for d in devices if d.name == device]
    if exact:
        return exact[0]
    partial = [d for d in devices if device.lower() in d.name.lower()]
    if len(partial) > 1:
        names = ", ".join(repr(d.name) for d in partial)
        raise NoInputDeviceError(devices, device, f"input device name {device!r} is ambiguous: {names}")
    if not partial:
        raise NoInputDeviceError(devices, device)
    return partial[0]


def reinit_portaudio() -> None:
    """Re-enumerate devices (PortAudio only scans at initialisation), e.g. after a USB microphone
    was unplugged and plugged back. Affects every PortAudio stream of this process."""
    sd = import_sounddevice()
    sd._terminate()
    sd._initialize()
