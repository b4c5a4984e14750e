"""Run a TensorRT engine (TensorRT 10 API) on a CUDA stream, after checking its fingerprint.

Torch-free: device memory and the stream come from cuda-python (`cuda.bindings.runtime`, or the
older `cuda.cudart`). TensorRT and cuda-python are imported when an engine is opened, so this
module imports anywhere. Usage:

    engine = TensorRTEngine("engines/text_encoder.fp16.trt10.3.0.sm87.engine")
    out = engine.run({"input_ids": ids, "attention_mask": mask})   # {"features": [B, D] float32}

An engine built for another TensorRT version, GPU or ONNX graph is refused with
EngineMismatchError before TensorRT sees it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cmer_edge.backends.engine_fingerprint import DeviceInfo, EngineFingerprint, EngineMismatchError, check_engine

log = logging.getLogger("cmer_edge")


class TensorRTUnavailable(RuntimeError):
    """TensorRT, cuda-python or a CUDA device is missing (the message says which and how to get it)."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            "the TensorRT Python package is not installed (JetPack: apt-get install python3-libnvinfer; "
            f"desktop: pip install tensorrt): {exc}") from exc
    return tensorrt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise TensorRTUnavailable(f"cuda-python is not installed (pip install cuda-python): {exc}") from exc
    return cudart


def cuda_call(result, what: str):
    """Unpack a cuda-python (err, *values) tuple; RuntimeError naming the call on failure."""
    cudart = import_cudart()
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA {what} failed: {cudart.cudaGetErrorName(err)[1]}")
    return values[0] if len(values) == 1 else (values or None)


def current_device(device_id: int = 0) -> DeviceInfo:
    """The running TensorRT version and CUDA GPU (name, compute capability)."""
    trt = import_tensorrt()
    cudart = import_cudart()
    try:
        count = cuda_call(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except RuntimeError as exc:  # no driver / no device
        raise TensorRTUnavailable(f"no usable CUDA device: {exc}") from exc
    if not count or device_id >= count:
        raise TensorRTUnavailable(f"no CUDA device {device_id} (found {count or 0})")
    prop = cuda_call(cudart.cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties")
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return DeviceInfo(trt.__version__, name.strip("\x00 "), f"{prop.major}.{prop.minor}")


class DeviceBuffers:
    """Grow-only device buffers by tensor name, freed on close()."""

    def __init__(self) -> None:
        self._cudart = import_cudart()
        self._buffers: dict[str, tuple[int, int]] = {}

    def get(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                cuda_call(self._cudart.cudaFree(ptr), "cudaFree")
            ptr = int(cuda_call(self._cudart.cudaMalloc(max(nbytes, 256)), f"cudaMalloc({nbytes}) for {name}"))
            self._buffers[name] = (ptr, max(nbytes, 256))
        return ptr

    def upload(self, name: str, array: np.ndarray, stream=None) -> int:
        ptr = self.get(name, array.nbytes)
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        if stream is None:
            cuda_call(self._cudart.cudaMemcpy(ptr, array.ctypes.data, array.nbytes, kind), f"copy {name} to device")
        else:
            cuda_call(self._cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, stream),
                      f"copy {name} to device")
        return ptr

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()


class TensorRTEngine:
    """One deserialised engine, its execution context, a CUDA stream and device buffers."""

    def __init__(self, path: str | Path, *, device_id: int = 0, onnx_sha256: str | None = None) -> None:
        trt = import_tensorrt()
        self._cudart = import_cudart()
        self.path = Path(path)
        self.device = current_device(device_id)
        self.fingerprint: EngineFingerprint = check_engine(self.path, self.device, onnx_sha256=onnx_sha256)
        cuda_call(self._cudart.cudaSetDevice(device_id), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialise {self.path}; rebuild it")
        self.context = self.engine.create_execution_context()
        self.stream = cuda_call(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.profile = {n: [tuple(s) for s in self.engine.get_tensor_profile_shape(n, 0)] for n in self.input_names}
        self._buffers = DeviceBuffers()

    def _bind_input(self, name: str, value: np.ndarray) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind != self.dtypes[name].kind:
            raise ValueError(f"{self.path.name}: input {name} must be {self.dtypes[name]}, got {array.dtype}")
        array = np.ascontiguousarray(array, dtype=self.dtypes[name])
        low, _, high = self.profile[name]
        if len(array.shape) != len(low) or any(
                not lo <= s <= hi for s, lo, hi in zip(array.shape, low, high, strict=True)):
            raise ValueError(f"{self.path.name}: input {name} has shape {array.shape}, the engine's profile "
                             f"allows {low} .. {high}")
        if not self.context.set_input_shape(name, array.shape):
            raise ValueError(f"{self.path.name}: TensorRT rejected shape {array.shape} for {name}")
        ptr = self._buffers.upload(name, array, self.stream)
        self.context.set_tensor_address(name, ptr)
        return array

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by name (numpy) -> outputs by name (numpy), synchronised on the engine's stream."""
        if set(feeds) != set(self.input_names):
            raise ValueError(f"{self.path.name}: inputs {sorted(feeds)} != engine inputs {sorted(self.input_names)}")
        keep = [self._bind_input(n, feeds[n]) for n in self.input_names]  # alive until the copies ran
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = np.empty(shape, self.dtypes[name])
            self.context.set_tensor_address(name, self._buffers.get(name, outputs[name].nbytes))
        if not self.context.execute_async_v3(stream_handle=int(self.stream)):
            raise RuntimeError(f"{self.path.name}: TensorRT execution failed")
        d2h = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, host in outputs.items():
            cuda_call(self._cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers.get(name, host.nbytes),
                                                   host.nbytes, d2h, self.stream), f"copy {name} to host")
        cuda_call(self._cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        del keep
        return outputs

    def close(self) -> None:
        self._buffers.close()
        if getattr(self, "stream", None) is not None:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __enter__(self) -> TensorRTEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
