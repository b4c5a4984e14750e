"""Run the recognizer and the display server together until SIGINT/SIGTERM (or `stop` is set).

    asyncio.run(run(recognizer, source, ServerConfig(port=8765), HubConfig(), on_ready=print))

Threads: the event loop (HTTP, WebSocket, status ticks) in the caller's thread; the recognizer in
`cmer_edge-serve-recognizer` (see feed.py) plus its own capture and stage threads. With
`ServerConfig.loop_nice` > 0 the loop thread lowers its own CPU priority once the recognizer's thread
runs (Linux nice of that thread only): where the two want the same core, the recognizer wins and the
page waits a little. Shutdown: stop
the source, wait for the recognizer thread (bounded), close every WebSocket with 1001 "going away",
close the listening socket, close the recognizer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from aiohttp import web

from cmer_edge.serve.app import ServerConfig, create_app
from cmer_edge.serve.feed import RecognizerFeed
from cmer_edge.serve.hub import Hub, HubConfig

log = logging.getLogger("cmer_edge")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv4 or IPv6 by what `host` resolves to); port 0 picks a free one."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(64)
    sock.setblocking(False)
    return sock


def lower_this_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by `nice` (Linux: per thread; threads it starts later
    inherit it, threads started before keep theirs). False where the platform has no per-thread nice."""
    if nice == 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.warning("serve: could not lower the event loop's priority: %s", exc)
        return False
    return True


def page_url(host: str, port: int, token: str | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"http://{name}:{port}/" + (f"?token={token}" if token else "")


async def run(recognizer, source, config: ServerConfig, hub_config: HubConfig = HubConfig(), *,
              on_ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    hub = Hub(hub_config, labels=tuple(recognizer.bundle.labels))

    def publish(event: dict, created_unix_s: float) -> None:  # recognizer thread: never waits
        loop.call_soon_threadsafe(hub.publish_event, event, created_unix_s)

    feed = RecognizerFeed(recognizer, source, publish)
    app = create_app(hub, config, health=lambda: {"recognizer": feed.state, "latest_seq": hub.latest_seq})
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (RuntimeError, ValueError):  # not the main thread (tests, embedding): `stop` only
            pass
    feed.start()
    lower_this_thread_priority(config.loop_nice)  # after feed.start(): the recognizer's threads keep theirs
    if on_ready is not None:
        on_ready(page_url(config.host, port, config.token))
    try:
        while not stop.is_set():
            hub.publish_status(dict(feed.status(), server=asdict(hub.stats), instance=hub.instance,
                                    t_unix_ms=round(time.time() * 1000.0, 1)))
            try:
                await asyncio.wait_for(stop.wait(), config.status_interval_s)
            except asyncio.TimeoutError:
                pass
    finally:
        log.info("serve: shutting down")
        await loop.run_in_executor(None, feed.stop)
        await runner.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
        recognizer.close()
        log.info("serve: stopped (%d events, %d clients dropped, %d refused)", hub.stats.events,
                 hub.stats.dropped_clients, hub.stats.rejected_clients)
