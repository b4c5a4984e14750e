"""The recognizer in its own thread, handing events to the event loop without ever waiting on it.

    feed = RecognizerFeed(recognizer, source, publish)   # publish(event_dict, created_unix_s), thread-safe
    feed.start(); ...; feed.stop()                       # stop: closes the source, joins the thread
    feed.status()                                        # input level, speech, queue, counters, backends

`publish` is called in the recognizer thread right after the recognizer yields an event; the serve
layer passes `loop.call_soon_threadsafe(hub.publish_event, ...)`, which only appends to the loop's
ready queue, so clients (fast, slow or stalled) cannot slow the recognizer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np

log = logging.getLogger("cmer_edge")


class LevelTap:
    """Passes a block source through and keeps its input level (dBFS of the blocks since the last read)."""

    def __init__(self, source) -> None:
        self.source = source
        self.live = bool(getattr(source, "live", False))  # the recognizer's drop / speculation policy
        self._peak = 0.0
        self._sum_sq, self._n = 0.0, 0
        self.stream_s = 0.0
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator:
        for block in self.source:
            x = np.asarray(block.samples, np.float32)
            with self._lock:
                if x.size:
                    self._peak = max(self._peak, float(np.max(np.abs(x))))
                    self._sum_sq += float(np.dot(x, x))
                    self._n += x.size
                self.stream_s = block.start_s + x.size / getattr(self.source, "sample_rate_hz", 16_000)
            yield block

    def read_level(self) -> dict:
        """RMS and peak level (dBFS, floor -100) since the last call."""
        with self._lock:
            rms = math.sqrt(self._sum_sq / self._n) if self._n else 0.0
            peak = self._peak
            self._peak, self._sum_sq, self._n = 0.0, 0.0, 0
        db = lambda v: round(max(-100.0, 20.0 * math.log10(v)) if v > 0 else -100.0, 1)  # noqa: E731
        return {"rms_dbfs": db(rms), "peak_dbfs": db(peak), "stream_s": round(self.stream_s, 2)}

    def close(self) -> None:
        if hasattr(self.source, "close"):
            self.source.close()


def describe_backends(recognizer) -> dict:
    """Which backend runs each part, for the page's footer (read once at start)."""
    stages = recognizer.stages
    text = getattr(getattr(stages.text_encoder, "choice", None), "backend", None)
    parts = getattr(stages.audio_extractor, "parts", [stages.audio_extractor] if stages.audio_extractor else [])
    audio = [f"{getattr(p, 'name', type(p).__name__)}"
             + (f" ({p.backend})" if getattr(p, "backend", None) else "") for p in parts]
    asr = recognizer.config.asr if text is not None else "none"
    if asr == "whisper":
        asr = f"whisper {recognizer.config.asr_model}"
    return {"audio": ", ".join(audio) or "none", "text": text or "none", "asr": asr,
            "head": getattr(recognizer.head, "device", None) or recognizer.config.device}


class RecognizerFeed:
    def __init__(self, recognizer, source, publish: Callable[[dict, float], None]) -> None:
        self.recognizer = recognizer
        self.tap = LevelTap(source)
        self.publish = publish
        self.state = "starting"  # starting | running | finished | stopped | failed: ...
        self.backends = describe_backends(recognizer)
        self._thread = threading.Thread(target=self._run, name="cmer_edge-serve-recognizer", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self.state = "running"
        try:
            for event in self.recognizer.stream(self.tap):
                created = time.time()
                try:
                    self.publish(event.to_dict(), created)
                except RuntimeError:  # the event loop is closed: shutting down
                    break
            self.state = "stopped" if self._stopping.is_set() else "finished"
            log.info("serve: input finished; still serving (Ctrl-C to stop)")
        except Exception as exc:  # reported on /healthz and in the status, and logged
            if self._stopping.is_set():  # the source was closed under a read: that is how stopping goes
                self.state = "stopped"
                return
            self.state = f"failed: {exc}"
            log.error("serve: the recognizer stopped: %s", exc)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the source (the stream ends at its next block) and wait for the thread."""
        self._stopping.set()
        self.tap.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("serve: the recognizer thread did not stop within %.0f s", timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict:
        rec = dict(self.recognizer.status(), state=self.state)
        source = getattr(self.tap.source, "stats", None)  # SourceStats of file/array/microphone sources
        return {"input": dict(self.tap.read_level(), speech=rec.pop("in_speech")), "recognizer": rec,
                "source": asdict(source) if hasattr(source, "__dataclass_fields__") else {},
                "backends": self.backends}
