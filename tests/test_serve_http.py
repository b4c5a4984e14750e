"""The server over real sockets with a scripted recognizer: routes, only the page's assets (path
traversal, encoded forms included), token and Host/Origin checks, bounded clients, ten clients with
one stalled, provisional/final events, and clean shutdown of the real CLI on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import threading
import time

import pytest

from conftest import need
from helpers.serve import (InProcessServer, ScriptedRecognizer, http_get, make_event, raw_request,
                           stalled_websocket)

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(autouse=True)
def serve_extra():
    need(importlib.util.find_spec("aiohttp") is not None, "aiohttp is not installed: pip install cmer_edge[serve]")


@pytest.fixture(scope="module")
def server():
    rec = ScriptedRecognizer([make_event(i) for i in range(5)])
    with InProcessServer(rec) as srv:
        deadline = time.monotonic() + 10
        while json.loads(http_get(srv.url + "healthz")[1])["events"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield srv


def test_page_assets_and_security_headers(server):
    for path, kind in (("", "text/html"), ("kiosk.js", "text/javascript"), ("kiosk.css", "text/css")):
        status, body = http_get(server.url + path)
        assert status == 200 and body, path
    import urllib.request

    with urllib.request.urlopen(server.url) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        page = r.read().decode()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN


@pytest.mark.parametrize("target", [
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/..%2f..%2f..%2fetc%2fpasswd", "/%252e%252e%252fetc%252fpasswd", "/..%5c..%5cetc%5cpasswd",
    "/kiosk.js/../../app.py", "/static/../app.py", "/app.py", "/static/kiosk.js", "/__init__.py",
    "//etc/passwd", "/kiosk.js%00.html", "/./kiosk.js/..", "/index.html/..%2f..%2fhub.py",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
])
def test_nothing_but_the_page_assets_is_served(server, target):
    status, body = raw_request(server.port, target)
    assert status in (400, 403, 404), (target, status, body[:200])
    assert b"root:" not in body and b"import" not in body


def test_events_since_and_validation(server):
    status, body = http_get(server.url + "events?since=0")
    data = json.loads(body)
    assert status == 200 and [m["seq"] for m in data["events"]] == [1, 2, 3, 4, 5]
    assert [m["event"]["utterance_id"] for m in data["events"]] == [0, 1, 2, 3, 4]
    assert data["labels"] == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert [m["seq"] for m in json.loads(http_get(server.url + "events?since=3")[1])["events"]] == [4, 5]
    for bad in ("since=-1", "since=abc", "limit=0", "limit=100000"):
        assert http_get(server.url + "events?" + bad)[0] == 400, bad
    health = json.loads(http_get(server.url + "healthz")[1])
    assert health["ok"] and health["recognizer"] == "finished" and health["events"] == 5


def test_foreign_host_and_cross_origin_websocket_refused(server):
    assert raw_request(server.port, "/", host="attacker.example")[0] == 403  # DNS rebinding
    assert raw_request(server.port, "/events", host="attacker.example:8765")[0] == 403
    assert raw_request(server.port, "/", host=f"localhost:{server.port}")[0] == 200
    ws_headers = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    evil = raw_request(server.port, "/ws", host=f"127.0.0.1:{server.port}",
                       extra=ws_headers + "Origin: http://evil.example\r\n")
    assert evil[0] == 403


def test_token_required_beyond_loopback():
    from cmer_edge.serve.app import ServerConfig

    with pytest.raises(ValueError, match="token is required"):
        ServerConfig(host="0.0.0.0")
    ServerConfig(host="0.0.0.0", token=TOKEN)
    rec = ScriptedRecognizer([make_event(0)])
    with InProcessServer(rec, token=TOKEN) as srv:
        base = f"http://127.0.0.1:{srv.port}/"
        assert srv.url.endswith(f"?token={TOKEN}")
        for path in ("", "events", "kiosk.js", "ws"):
            assert http_get(base + path)[0] == 403, path
            assert http_get(base + path + "?token=wrong-token-xx")[0] == 403, path
        assert http_get(base + "?token=" + TOKEN)[0] == 200
        assert http_get(base + "events", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert http_get(base + "healthz")[0] == 200  # liveness needs no token and tells nothing


def test_cli_token_rules(capsys):
    from cmer_edge.serve.__main__ import main, resolve_token
    from cmer_edge.serve.app import is_loopback

    assert resolve_token("127.0.0.1", None, is_loopback) is None
    assert resolve_token("localhost", None, is_loopback) is None
    generated = resolve_token("0.0.0.0", None, is_loopback)
    assert generated and len(generated) >= 16 and generated != resolve_token("0.0.0.0", None, is_loopback)
    assert resolve_token("0.0.0.0", "given-token", is_loopback) == "given-token"
    assert main(["--host", "0.0.0.0", "--token", "short", "--input", "/nonexistent.wav"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["--input", "/nonexistent.wav"]) == 2
    assert "not found" in capsys.readouterr().err


async def _collect(url: str, until_seq: int, out: list, timeout_s: float = 30.0) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=timeout_s)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                out.append(json.loads(msg.data))
                if out[-1].get("type") == "event" and out[-1]["seq"] >= until_seq:
                    return


def test_ten_clients_one_stalled_healthy_ones_get_everything_stalled_one_dropped():
    import threading

    n = 400  # ~1 KB each: far more than a stalled client's queue and socket buffers hold
    rec = ScriptedRecognizer([make_event(i, text_pad=900) for i in range(n)], gap_s=0.004)
    go = threading.Event()

    class Gate:  # the audio source: starts the recognizer once every client is connected
        def __iter__(self):
            go.wait(30)
            return iter(())

    with InProcessServer(rec, source=Gate(), client_queue=16) as srv:
        stalled = stalled_websocket(srv.port)
        healthy: list[list] = [[] for _ in range(9)]

        async def clients():
            tasks = [asyncio.ensure_future(_collect(f"ws://127.0.0.1:{srv.port}/ws", n, out)) for out in healthy]
            await asyncio.sleep(1.0)
            go.set()
            await asyncio.gather(*tasks)

        asyncio.run(clients())
        health = json.loads(http_get(srv.url + "healthz")[1])
        stalled.close()
    for out in healthy:
        assert out[0]["type"] == "hello"
        assert [m["seq"] for m in out if m["type"] == "event"] == list(range(1, n + 1))
    assert any(m["type"] == "status" for m in healthy[0]), "no status message reached a client"
    assert health["dropped_clients"] == 1 and health["rejected_clients"] == 0
    assert max(rec.yield_gaps_s) < 0.05, f"the recognizer waited {max(rec.yield_gaps_s) * 1000:.0f} ms on a hand-over"


def test_clients_are_bounded():
    rec = ScriptedRecognizer([])
    with InProcessServer(rec, max_clients=2) as srv:
        held = [stalled_websocket(srv.port) for _ in range(2)]
        ws_headers = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        status, _ = raw_request(srv.port, "/ws", host=f"127.0.0.1:{srv.port}", extra=ws_headers)
        health = json.loads(http_get(srv.url + "healthz")[1])
        for s in held:
            s.close()
    assert status == 503 and health["rejected_clients"] == 1 and health["clients"] == 2


def test_provisional_then_final_events_pass_through_in_order():
    events = [make_event(0, "provisional"), make_event(0, "final", label_shift=3), make_event(1, "final")]
    with InProcessServer(ScriptedRecognizer(events)) as srv:
        deadline = time.monotonic() + 10
        while json.loads(http_get(srv.url + "healthz")[1])["events"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        got = json.loads(http_get(srv.url + "events")[1])["events"]
    assert [(m["event"]["utterance_id"], m["event"]["stage"]) for m in got] == [(0, "provisional"), (0, "final"),
                                                                                (1, "final")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_cleanly_on_signal(tmp_path, sig):
    from helpers.serve import ServeProcess, write_dialogue

    from cmer_edge.testing.espeak import espeak_available

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path / "dialogue.wav"
    write_dialogue(path, n=2)
    proc = ServeProcess(["--input", str(path), "--realtime", "--asr", "none"])
    assert http_get(proc.url + "healthz")[0] == 200
    t = time.monotonic()
    code = proc.stop(sig)
    took, err = time.monotonic() - t, proc.proc.stderr.read()
    assert code == 0, f"exit {code}; serve's stderr ends: {err[-3000:]}"
    assert took < 15
    assert "Traceback" not in err, err


def test_shutdown_is_quick_with_a_stalled_client_connected():
    srv = InProcessServer(ScriptedRecognizer([make_event(i, text_pad=900) for i in range(50)]))
    with srv:
        stalled = stalled_websocket(srv.port)
        time.sleep(0.5)
        t = time.monotonic()
    took = time.monotonic() - t
    stalled.close()
    assert took < 8, f"shutdown took {took:.1f} s"


def test_the_event_loop_can_yield_the_cpu_to_the_recognizer():
    """With loop_nice the loop thread lowers its own priority after starting the recognizer's thread,
    which keeps the process's priority; the test's own thread is untouched; default: equal."""
    import os

    from cmer_edge.serve.app import ServerConfig

    base = os.getpriority(os.PRIO_PROCESS, 0)
    for nice in (0, 5):
        rec = ScriptedRecognizer([make_event(0)])
        with InProcessServer(rec, loop_nice=nice) as srv:
            deadline = time.monotonic() + 10
            while json.loads(http_get(srv.url + "healthz")[1])["events"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rec.stream_nice == base
            assert os.getpriority(os.PRIO_PROCESS, srv._thread.native_id) == min(19, base + nice)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert ServerConfig().loop_nice == 0
    with pytest.raises(ValueError, match="loop nice"):
        ServerConfig(loop_nice=20)
