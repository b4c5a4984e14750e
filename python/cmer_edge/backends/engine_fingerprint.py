"""TensorRT engine names and fingerprints (torch-free, TensorRT-free: testable anywhere).

An engine is `<model>.<precision>.trt<major.minor.patch>.sm<cc>.engine`, e.g.
`text_encoder.fp16.trt10.3.0.sm87.engine`, with `<engine>.json` next to it: the TensorRT
version, GPU name and compute capability it was built on, the sha256 of the ONNX it was built
from and of the engine itself, the optimisation-profile shapes and the builder flags.
TensorRT engines only run on the TensorRT version and GPU they were built for; `check_engine`
refuses a mismatch with a message that says what differs and how to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRECISIONS = ("fp16", "int8", "fp32")  # also the preference order when several engines exist
FINGERPRINT_FORMAT = "cmer_edge.trt_engine"
FINGERPRINT_VERSION = 1
_NAME = re.compile(r"^(?P<model>[A-Za-z_][A-Za-z0-9_]*)\.(?P<precision>fp16|int8|fp32)"
                   r"\.trt(?P<trt>\d+\.\d+\.\d+)\.sm(?P<sm>\d{2,3})\.engine$")


class EngineMismatchError(ValueError):
    """An engine that was built for another TensorRT, GPU or ONNX graph, or whose files disagree."""


def short_version(version: str) -> str:
    """'10.3.0.30' -> '10.3.0' (the part that goes into engine names)."""
    parts = version.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        raise ValueError(f"TensorRT version {version!r} is not of the form major.minor.patch")
    return ".".join(parts[:3])


def sm_of(compute_capability: str | tuple[int, int]) -> str:
    """'8.7' or (8, 7) -> '87'."""
    if isinstance(compute_capability, str):
        major, _, minor = compute_capability.partition(".")
    else:
        major, minor = (str(v) for v in compute_capability)
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"compute capability {compute_capability!r} is not of the form major.minor")
    return f"{major}{minor}"


@dataclass(frozen=True)
class EngineName:
    model: str
    precision: str
    tensorrt: str  # major.minor.patch
    sm: str        # e.g. "87"

    @property
    def filename(self) -> str:
        return f"{self.model}.{self.precision}.trt{self.tensorrt}.sm{self.sm}.engine"

    @classmethod
    def parse(cls, filename: str) -> EngineName:
        match = _NAME.match(filename)
        if not match:
            raise ValueError(f"engine file name {filename!r} is not <model>.<fp16|int8|fp32>.trt<X.Y.Z>.sm<CC>.engine")
        return cls(match["model"], match["precision"], match["trt"], match["sm"])


def engine_filename(model: str, precision: str, tensorrt_version: str, compute_capability: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    name = EngineName(model, precision, short_version(tensorrt_version), sm_of(compute_capability))
    EngineName.parse(name.filename)  # validates the model part too
    return name.filename


@dataclass(frozen=True)
class DeviceInfo:
    """The TensorRT and GPU an engine is loaded on (or was built on)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"


@dataclass(frozen=True)
class EngineFingerprint:
    model: str
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    onnx_file: str
    onnx_sha256: str
    engine_sha256: str
    profiles: dict[str, dict[str, list[int]]]  # input -> {"min", "opt", "max"}
    builder_flags: list[str] = field(default_factory=list)
    workspace_bytes: int = 0
    cmer_edge_version: str = ""
    created_utc: str = ""

    def to_json(self) -> str:
        return json.dumps({"format": FINGERPRINT_FORMAT, "format_version": FINGERPRINT_VERSION, **asdict(self)},
                          indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineFingerprint:
        if data.get("format") != FINGERPRINT_FORMAT or data.get("format_version") != FINGERPRINT_VERSION:
            raise ValueError(f"not a {FINGERPRINT_FORMAT} v{FINGERPRINT_VERSION} fingerprint")
        fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        return cls(**fields)


def fingerprint_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_fingerprint(engine_path: str | Path) -> EngineFingerprint:
    path = fingerprint_path(engine_path)
    if not path.is_file():
        raise EngineMismatchError(f"engine {engine_path} has no fingerprint {path.name} next to it: it was not "
                                  "built by export/build_engine.py; rebuild it")
    try:
        return EngineFingerprint.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise EngineMismatchError(f"engine fingerprint {path} is unreadable ({exc}); rebuild the engine") from exc


def engine_problems(engine_path: str | Path, fp: EngineFingerprint, device: DeviceInfo, *,
                    onnx_sha256: str | None = None, check_sha: bool = True) -> list[str]:
    """Everything that makes the engine unusable here, as sentences (empty: usable)."""
    path = Path(engine_path)
    problems = []
    try:
        name = EngineName.parse(path.name)
    except ValueError as exc:
        return [str(exc)]
    for what, in_name, in_fp in (("model", name.model, fp.model), ("precision", name.precision, fp.precision),
                                 ("TensorRT", name.tensorrt, short_version(fp.tensorrt_version)),
                                 ("SM", name.sm, sm_of(fp.compute_capability))):
        if in_name != in_fp:
            problems.append(f"its file name says {what} {in_name} but its fingerprint says {in_fp}")
    if fp.tensorrt_version != device.tensorrt_version:
        problems.append(f"it was built with TensorRT {fp.tensorrt_version}, this is TensorRT {device.tensorrt_version}")
    if fp.compute_capability != device.compute_capability:
        built, here = fp.compute_capability, device.compute_capability
        problems.append(f"it was built for compute capability {built} (sm{sm_of(built)}), "
                        f"this GPU is {here} (sm{sm_of(here)})")
    if fp.gpu_name != device.gpu_name:
        problems.append(f"it was built on a {fp.gpu_name!r} GPU, this is a {device.gpu_name!r}")
    if onnx_sha256 is not None and fp.onnx_sha256 != onnx_sha256:
        problems.append(f"it was built from another {fp.onnx_file} than the bundle holds now (re-exported since)")
    if check_sha and path.is_file() and sha256_file(path) != fp.engine_sha256:
        problems.append("the engine file changed after it was built (sha256 mismatch)")
    return problems


def check_engine(engine_path: str | Path, device: DeviceInfo, *, onnx_sha256: str | None = None) -> EngineFingerprint:
    """The engine's fingerprint if it may run on `device`; EngineMismatchError saying why not."""
    path = Path(engine_path)
    if not path.is_file():
        raise EngineMismatchError(f"engine {path} not found")
    fp = read_fingerprint(path)
    problems = engine_problems(path, fp, device, onnx_sha256=onnx_sha256)
    if problems:
        raise EngineMismatchError(f"refusing TensorRT engine {path.name}: " + "; ".join(problems)
                                  + ". Rebuild it on this device: "
                                  f"python export/build_engine.py <bundle> --models {fp.model}")
    return fp


def find_engine(directory: str | Path, model: str, device: DeviceInfo, *,
                precision: str | None = None) -> Path | None:
    """The engine file for `model` built for this TensorRT and SM (fp16 > int8 > fp32 unless
    `precision` is given), or None. Its fingerprint is checked by the caller (check_engine)."""
    root = Path(directory)
    for prec in (precision,) if precision else PRECISIONS:
        path = root / engine_filename(model, prec, device.tensorrt_version, device.compute_capability)
        if path.is_file():
            return path
    return None
