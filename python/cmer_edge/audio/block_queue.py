"""The bounded hand-off between a capture thread and its consumer, with the overrun policy.

Policy (DESIGN §1, STYLE "real time has a written overrun policy"): the queue holds at most
`max_blocks`. When the producer finds it full it drops the OLDEST block, counts it
(`dropped_blocks`), and logs a warning at the start of each overrun episode (at most one warning
every `warn_every_s`). An episode ends when the consumer has emptied the queue. Dropping the
oldest keeps latency bounded (the consumer always gets the freshest audio); the dropped blocks'
indices stay missing on the stream clock, so the endpointer sees the gap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from cmer_edge.audio.blocks import AudioBlock, StatsCounter

log = logging.getLogger("cmer_edge")


class DropOldestQueue:
    """Thread-safe bounded FIFO of AudioBlocks; `put` never blocks, `get` waits up to a timeout."""

    def __init__(self, max_blocks: int, counter: StatsCounter, what: str = "audio queue",
                 warn_every_s: float = 5.0) -> None:
        if int(max_blocks) != max_blocks or max_blocks < 1:
            raise ValueError(f"queue size must be a positive integer of blocks, got {max_blocks}")
        self.max_blocks = int(max_blocks)
        self._items: deque[AudioBlock] = deque()
        self._cond = threading.Condition()
        self._counter = counter
        self._what = what
        self._warn_every_s = warn_every_s
        self._last_warn = -float("inf")
        self._in_overrun = False
        self._dropped_in_episode = 0
        self.max_depth = 0  # the deepest the queue has been (<= max_blocks)

    def put(self, block: AudioBlock) -> None:
        with self._cond:
            if len(self._items) >= self.max_blocks:
                self._items.popleft()
                self._dropped_in_episode += 1
                self._counter.add(dropped_blocks=1)
                if not self._in_overrun:
                    self._in_overrun = True
                    self._counter.add(overruns=1)
                    self._warn_overrun()
            self._items.append(block)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify()

    def get(self, timeout_s: float | None = None) -> AudioBlock | None:
        """The oldest block, or None when none arrives within `timeout_s` (or after `wake()`)."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            block = self._items.popleft()
            if not self._items and self._in_overrun:
                self._in_overrun = False
                log.info("%s: consumer caught up after dropping %d blocks", self._what, self._dropped_in_episode)
                self._dropped_in_episode = 0
            return block

    def wake(self) -> None:
        """Release a consumer blocked in `get` (used by close())."""
        with self._cond:
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def _warn_overrun(self) -> None:
        now = time.monotonic()
        if now - self._last_warn >= self._warn_every_s:
            self._last_warn = now
            log.warning("%s overrun: consumer is slower than real time; dropping oldest blocks "
                        "(queue of %d blocks full)", self._what, self.max_blocks)
