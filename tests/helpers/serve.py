"""Helpers of the serve tests: an in-process server on a scripted recognizer, a `python -m cmer_edge.serve`
subprocess on generated speech, a stalled WebSocket client, and headless Chromium (Selenium)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from cmer_edge.runtime.events import EmotionEvent

LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")


def make_event(i: int, stage: str | None = None, text_pad: int = 0, label_shift: int = 0):
    """Event i (label i % 7); with `stage`, wrapped so that to_dict() carries the coming "stage" field."""
    k = (i + label_shift) % len(LABELS)
    probs = {name: (0.4 if j == k else 0.1) for j, name in enumerate(LABELS)}
    event = EmotionEvent(i, 2.0 * i, 2.0 * i + 1.5, f"utterance {i} " + "x" * text_pad, LABELS[k], probs, 0.4,
                         ("audio", "text"), {"audio_features": 5.0, "head": 1.0, "total": 6.0})
    return event if stage is None else Staged(event, stage)


class Staged:
    def __init__(self, event: EmotionEvent, stage: str) -> None:
        self.event, self.stage = event, stage

    def to_dict(self) -> dict:
        return dict(self.event.to_dict(), stage=self.stage)


class ScriptedRecognizer:
    """Duck-typed Recognizer: yields the given events, `gap_s` apart; records how long each hand-over took."""

    def __init__(self, events, gap_s: float = 0.0) -> None:
        self.events, self.gap_s = list(events), gap_s
        self.bundle = SimpleNamespace(labels=LABELS)
        self.stages = SimpleNamespace(text_encoder=None, audio_extractor=None)
        self.config = SimpleNamespace(asr="none", asr_model="", device="cpu")
        self.head = SimpleNamespace(native=SimpleNamespace(device="cpu"))
        self.yield_gaps_s: list[float] = []
        self.closed = False

    def stream(self, source):
        self.stream_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        for block in source:  # drain the (tiny) source so the level tap sees blocks
            pass
        for event in self.events:
            if self.gap_s:
                time.sleep(self.gap_s)
            t = time.perf_counter()
            yield event
            self.yield_gaps_s.append(time.perf_counter() - t)  # how long the consumer (publish) held us

    def status(self) -> dict:
        return {"in_speech": False, "queue_depth": 0, "utterances": 0, "events": 0, "dropped_utterances": 0,
                "stage_failures": 0, "dialogues": 0}

    def close(self) -> None:
        self.closed = True


class InProcessServer:
    """cmer_edge.serve.server.run() in a thread with its own event loop."""

    def __init__(self, recognizer, source=(), **config) -> None:
        from cmer_edge.serve.app import ServerConfig
        from cmer_edge.serve.hub import HubConfig

        hub_keys = {"history", "client_queue", "max_clients"}
        self.hub_config = HubConfig(**{k: v for k, v in config.items() if k in hub_keys})
        self.config = ServerConfig(**{"port": 0, **{k: v for k, v in config.items() if k not in hub_keys}})
        self.recognizer, self.source = recognizer, source
        self.url: str | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        from cmer_edge.serve.server import run

        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        try:
            self.loop.run_until_complete(run(self.recognizer, self.source, self.config, self.hub_config,
                                             on_ready=self._on_ready, stop=self.stop_event))
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc
            self._ready.set()
        finally:
            self.loop.close()

    def _on_ready(self, url: str) -> None:
        self.url = url
        self._ready.set()

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(20), "server did not start"
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "server did not stop"


def http_get(url: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def raw_request(port: int, target: str, host: str = "127.0.0.1", extra: str = "") -> tuple[int, bytes]:
    """One GET with the request target sent byte for byte (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def stalled_websocket(port: int, path: str = "/ws", rcvbuf: int = 4096) -> socket.socket:
    """Open a WebSocket (handshake done) and never read from it again; a small receive window."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


# -- the real CLI on generated speech ------------------------------------------------------------
DIALOGUE = [
    ("Hi! Oh my god, I am so happy to see you!", 175, 70),
    ("Wait, what? You broke my phone?", 160, 60),
    ("I'm really sorry. I feel terrible about it.", 130, 35),
    ("Get out! I never want to see you again!", 185, 55),
    ("Fine. Let's talk about it tomorrow.", 150, 45),
    ("Okay, that sounds good to me.", 165, 50),
]


def write_dialogue(path: Path, n: int = len(DIALOGUE), gap_s: float = 1.0):
    """Generated (espeak-ng) dialogue of n utterances; returns the scene truth (text, start_s, end_s)."""
    from cmer_edge.testing.scenes import write_scene
    from cmer_edge.testing.espeak import speak

    voices = [(text, speak(text, speed_wpm=wpm, pitch=pitch)) for text, wpm, pitch in DIALOGUE]
    clips = [voices[i % len(voices)] for i in range(n)]
    return write_scene(path, clips, [gap_s] * n, noise_dbfs=-60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`python -m cmer_edge.serve ARGS` with external text (the scene's transcripts) on stdin."""

    def __init__(self, args: list[str], texts=(), port: int | None = None) -> None:
        self.port = port or free_port()
        import cmer_edge  # the child imports the same package as the tests (installed, or the source tree)

        here = str(Path(cmer_edge.__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "cmer_edge.serve", "--port", str(self.port), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        for t in texts:
            self.proc.stdin.write(json.dumps({"text": t.text, "start_s": t.start_s, "end_s": t.end_s}) + "\n")
        self.proc.stdin.close()
        line = self.proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        if not found:
            self.stop()
            raise RuntimeError(f"serve did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = found.group(0)

    def get_json(self, path: str) -> dict:
        status, body = http_get(f"http://127.0.0.1:{self.port}{path}")
        assert status == 200, (status, body[:200])
        return json.loads(body)

    def wait_finished(self, timeout_s: float = 240.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            health = self.get_json("/healthz")
            if health["recognizer"] != "running" and health["recognizer"] != "starting":
                return health
            time.sleep(0.5)
        raise TimeoutError(f"the recognizer did not finish within {timeout_s} s")

    def stop(self, sig=None, timeout_s: float = 30.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def chromium_paths() -> tuple[str | None, str | None]:
    return (shutil.which("chromium") or shutil.which("chromium-browser"),
            shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                             if os.path.exists("/usr/lib/chromium/chromedriver") else None))


def start_chromium(width: int = 1280, height: int = 800):
    """Headless system Chromium through the system chromedriver (Selenium Manager never downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.binary_location = browser
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return d
