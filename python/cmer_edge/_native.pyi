"""Type stubs for cmer_edge._native (the compiled core). Kept in sync by tests/test_native_stub.py."""

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
