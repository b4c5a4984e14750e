"""The bounded hand-off between the recognizer's capture thread and the thread that runs inference.

Two policies, chosen by the source (docs/live_audio.md, "Back-pressure and overrun"):
- `wait` (files, arrays, any iterable that is not `live`): a full queue blocks the producer until
  the consumer takes an item or the hand-off is stopped. Nothing is ever dropped, so a file gives
  one event per utterance however slow inference is; reading just pauses.
- `drop_oldest` (a microphone, a file paced with `realtime=True`): the audio keeps coming whether we
  keep up or not, so a full queue drops its OLDEST item, counts it and logs a warning.

Items are opaque to the queue (today `(Utterance, closed_at)`; a later stage field, such as the
provisional/final split of issue 12 item 6, travels inside the item without changing this class).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

log = logging.getLogger("cmer_edge")
POLICIES = ("wait", "drop_oldest")


class Stopped(Exception):
    """The hand-off was stopped (the recognizer is closing); the producer should end."""


class Handoff:
    def __init__(self, max_items: int, policy: str, on_drop=None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if int(max_items) != max_items or max_items < 1:
            raise ValueError(f"max_items must be an integer >= 1, got {max_items!r}")
        self.max_items, self.policy = int(max_items), policy
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._done = False  # the producer finished
        self._stopped = False  # the consumer / close() stopped everything
        self._on_drop = on_drop  # called with the dropped item (lock not held)
        self.dropped = 0
        self.max_depth = 0
        self.thread: threading.Thread | None = None  # the producer, for whoever stops it
        self.source: Any = None  # what the producer reads, closed on stop by its owner

    def put(self, item: Any) -> None:
        """Add an item; with `wait` blocks while full. Raises Stopped once stop() was called."""
        dropped = None
        with self._cond:
            while self.policy == "wait" and len(self._items) >= self.max_items and not self._stopped:
                self._cond.wait()
            if self._stopped:
                raise Stopped()
            if len(self._items) >= self.max_items:  # drop_oldest
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify_all()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)

    def finish(self) -> None:
        """The producer is done: `get` returns None once the queue is empty."""
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Wake and end both sides now: `put` raises Stopped, `get` returns None."""
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def get(self) -> Any | None:
        """The oldest item; None when the producer finished and the queue is empty, or when stopped."""
        with self._cond:
            while not self._items and not self._done and not self._stopped:
                self._cond.wait()
            if self._stopped or not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
