"""Timing helpers shared by the benchmarks: round-robin timing, percentiles, machine description."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Timed:
    """One thing to time: `fn` runs one operation (and waits for it to finish)."""

    key: str
    fn: Callable[[], object]
    times_s: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.times_s, q) * 1e3)


def time_round_robin(items: Sequence[Timed], rounds: int, per_round: int, warmup: int) -> None:
    """Warm every item up, then time `rounds` rounds of `per_round` calls of each item in turn, so
    that load changes on a shared machine hit every implementation alike."""
    for item in items:
        for _ in range(warmup):
            item.fn()
    for _ in range(rounds):
        for item in items:
            for _ in range(per_round):
                start = time.perf_counter()
                item.fn()
                item.times_s.append(time.perf_counter() - start)


def cpu_description() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model")):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"


def load_average() -> str:
    try:
        return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"
