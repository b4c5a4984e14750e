"""Type stubs for cmer_edge._native (the compiled core). Kept in sync by tests/test_native_stub.py.

The Python API of the head is cmer_edge.runtime.head (NativeHead, Session); Head and Session here
are the raw bindings it wraps.
"""

from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

testing: ModuleType  # test-only hooks: inject_session_fault(session, stage), disable_head(head, reason)

class CudaError(RuntimeError):
    """The CUDA runtime failed during a forward/push; the head is disabled from then on."""

def build_info() -> dict[str, Any]: ...
def cuda_available() -> bool: ...
def lstm_layer(
    x: npt.ArrayLike,
    lengths: npt.ArrayLike,
    w_ih: npt.ArrayLike,
    w_hh: npt.ArrayLike,
    b_ih: npt.ArrayLike,
    b_hh: npt.ArrayLike,
    reverse: bool = False,
    device: str = "cpu",
) -> np.ndarray: ...
def linear(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    precision: str = "fp32",
    relu: bool = False,
    num_threads: int = 1,
) -> np.ndarray: ...
def attention(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    lengths: npt.ArrayLike,
    num_heads: int,
    q_offset: int = 0,
    window_left: int = -1,
    window_right: int = -1,
) -> np.ndarray: ...
def read_bandwidth(megabytes: int = 512, passes: int = 5, num_threads: int = 0) -> dict[str, Any]: ...
def multiply_add_rate(passes: int = 5, num_threads: int = 0) -> dict[str, Any]: ...

class HeadConfig:
    audio_dim: int
    text_dim: int
    hidden: int
    sca_layers: int
    num_heads: int
    ffn_dim: int
    classifier_dim: int
    num_classes: int
    modalities: str
    use_sca: bool
    def __init__(
        self,
        *,
        audio_dim: int = 12696,
        text_dim: int = 4096,
        hidden: int = 128,
        sca_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 512,
        classifier_dim: int = 256,
        num_classes: int = 7,
        modalities: str = "both",
        use_sca: bool = True,
    ) -> None: ...
    def validate(self) -> None: ...
    @property
    def num_branches(self) -> int: ...
    @property
    def width(self) -> int: ...

class Head:
    def __init__(
        self,
        config: HeadConfig,
        tensors: dict[str, npt.ArrayLike],
        device: str = "cpu",
        precision: str = "fp32",
        num_threads: int = 0,
    ) -> None: ...
    def forward(
        self,
        x_a: npt.ArrayLike | None,
        x_t: npt.ArrayLike | None,
        lengths: npt.ArrayLike,
        present: npt.ArrayLike | None = None,
    ) -> np.ndarray: ...
    @property
    def config(self) -> HeadConfig: ...
    @property
    def disabled(self) -> bool: ...
    @property
    def disabled_reason(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def num_threads(self) -> int: ...
    @property
    def weight_bytes(self) -> int: ...

class Session:
    def __init__(self, head: Head, window_utts: int, cuda_graph: bool = False) -> None: ...
    def push(self, x_a: npt.ArrayLike | None, x_t: npt.ArrayLike | None, provisional: bool = False) -> np.ndarray: ...
    def replace_last(
        self, x_a: npt.ArrayLike | None, x_t: npt.ArrayLike | None, provisional: bool = False
    ) -> np.ndarray: ...
    def reset(self) -> None: ...
    @property
    def provisional(self) -> bool: ...
    @property
    def window_utts(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def pushed(self) -> int: ...
    @property
    def cuda_graph(self) -> bool: ...
    @property
    def last_logits(self) -> np.ndarray: ...
