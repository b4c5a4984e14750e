"""Type stubs for cmer_edge._native (the compiled core). Kept in sync by tests/test_native_stub.py.

The Python API of the head is cmer_edge.runtime.head (NativeHead, Session); Head and Session here
are the raw bindings it wraps.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

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

class Head:
    def __init__(
        self,
        config: dict[str, Any],
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
    def config(self) -> dict[str, Any]: ...
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
    def push(self, x_a: npt.ArrayLike | None, x_t: npt.ArrayLike | None) -> np.ndarray: ...
    def reset(self) -> None: ...
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
