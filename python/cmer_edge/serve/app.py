"""The HTTP/WebSocket front (aiohttp): the page, `/ws`, `/events?since=N`, `/healthz`.

Routes (GET only):
    /                     the display page (index.html); /kiosk.js, /kiosk.css its assets
    /ws                   WebSocket: hello, then every event and a status message about twice a second
    /events?since=N       {"events": [event messages with seq > N], "latest_seq", "oldest_seq", ...}
    /healthz              {"ok": true, "recognizer": "running" | "finished" | ..., "clients": n}
Security: only the three page assets exist (loaded from the package into memory at start; no path is
ever mapped to the file system, so there is nothing to traverse). A token, when set (always when
bound beyond loopback), is required on every route but /healthz, as `?token=` or
`Authorization: Bearer`. Without a token the server answers only Host headers naming loopback
(DNS rebinding), and a WebSocket whose Origin is not the page's own is refused (cross-site).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from cmer_edge.serve.hub import Hub

log = logging.getLogger("cmer_edge")

ASSETS = {"/": ("index.html", "text/html"), "/kiosk.js": ("kiosk.js", "text/javascript"),
          "/kiosk.css": ("kiosk.css", "text/css")}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token may be in the page's URL
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
WS_SEND_BUFFER_BYTES = 16 * 1024  # kernel send buffer per WebSocket (so a stalled client backs up quickly)
WS_WRITE_HIGH_WATER = 8 * 1024    # asyncio transport buffer before a send waits


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None          # required when host is not loopback (cli generates one)
    status_interval_s: float = 0.5
    heartbeat_s: float = 10.0         # WebSocket ping interval; no pong within half of it: closed
    loop_nice: int = 0                # the event loop thread's CPU priority below the recognizer's (0: equal)

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"--host {self.host} is not loopback: a token is required (--token, or let the server "
                             "generate one)")
        if self.token is not None and len(self.token) < 8:
            raise ValueError("the token must be at least 8 characters")
        if not self.status_interval_s > 0 or not self.heartbeat_s > 0:
            raise ValueError("status_interval_s and heartbeat_s must be > 0")
        if not 0 <= self.loop_nice <= 19:
            raise ValueError(f"loop nice must be in 0..19, got {self.loop_nice}")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    import ipaddress

    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def load_assets() -> dict[str, tuple[bytes, str]]:
    root = resources.files("cmer_edge.serve") / "static"
    return {route: ((root / name).read_bytes(), ctype) for route, (name, ctype) in ASSETS.items()}


def _host_name(host_header: str) -> str:
    return urlsplit("//" + host_header).hostname or ""


def _authorised(request: web.Request, token: str | None) -> bool:
    if token is None:
        return _host_name(request.host) in LOOPBACK_NAMES
    given = request.query.get("token") or ""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[7:]
    return hmac.compare_digest(given.encode(), token.encode())


@web.middleware
async def _headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:  # a WebSocket is prepared (upgraded) by its handler
        response.headers.update(SECURITY_HEADERS)
    return response


def _json(obj: dict, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json")


def create_app(hub: Hub, config: ServerConfig, health=lambda: {}) -> web.Application:
    """The aiohttp application; `health()` adds fields to /healthz (the recognizer's state)."""
    assets = load_assets()
    app = web.Application(middlewares=[_headers], client_max_size=1024)
    sockets: set[web.WebSocketResponse] = set()

    def guard(request: web.Request) -> None:
        if not _authorised(request, config.token):
            raise web.HTTPForbidden(text="forbidden: token missing or wrong (or Host is not loopback)\n")

    async def asset(request: web.Request) -> web.Response:
        guard(request)
        body, ctype = assets[request.path]
        return web.Response(body=body, content_type=ctype, charset="utf-8")

    async def events(request: web.Request) -> web.Response:
        guard(request)
        try:
            since = int(request.query.get("since", "0"))
            limit = int(request.query.get("limit", str(hub.config.history)))
        except ValueError:
            raise web.HTTPBadRequest(text="since and limit must be integers\n") from None
        if since < 0 or not 1 <= limit <= hub.config.history:
            raise web.HTTPBadRequest(text=f"need since >= 0 and 1 <= limit <= {hub.config.history}\n")
        return _json(dict(hub.hello(), type="events", events=hub.events_since(since, limit)))

    async def healthz(request: web.Request) -> web.Response:
        st = hub.stats
        return _json({"ok": True, "instance": hub.instance, "events": st.events, "clients": st.clients,
                      "dropped_clients": st.dropped_clients, "timed_out_clients": st.timed_out_clients,
                      "rejected_clients": st.rejected_clients, **health()})

    async def ws_handler(request: web.Request) -> web.StreamResponse:
        guard(request)
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="forbidden: cross-origin WebSocket\n")
        if not hub.has_room():
            hub.reject()
            raise web.HTTPServiceUnavailable(text="too many clients\n")
        ws = web.WebSocketResponse(heartbeat=config.heartbeat_s, writer_limit=WS_WRITE_HIGH_WATER,
                                   max_msg_size=4096, compress=False, timeout=2.0)
        await ws.prepare(request)
        _small_buffers(request)
        sockets.add(ws)
        reader = asyncio.ensure_future(_drain_incoming(ws))
        try:
            how = await _race(hub.serve_client(ws.send_str), reader)
        finally:
            sockets.discard(ws)
            reader.cancel()
        if how == "dropped":  # a stalled peer would never read a close frame
            if request.transport is not None:
                request.transport.abort()
            return ws
        if how == "timeout":
            hub.count_timeout()
        if not ws.closed:
            await ws.close(code=WSCloseCode.GOING_AWAY)
        return ws

    async def close_sockets(app: web.Application) -> None:
        async def close(ws: web.WebSocketResponse) -> None:  # a stalled peer never answers: bounded wait
            try:
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"), 2.0)
            except (asyncio.TimeoutError, ConnectionError):
                pass

        await asyncio.gather(*(close(ws) for ws in list(sockets)))

    app.router.add_get("/", asset)
    app.router.add_get("/kiosk.js", asset)
    app.router.add_get("/kiosk.css", asset)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/events", events)
    app.router.add_get("/healthz", healthz)
    app.on_shutdown.append(close_sockets)
    return app


def _small_buffers(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=WS_WRITE_HIGH_WATER)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SEND_BUFFER_BYTES)


async def _drain_incoming(ws: web.WebSocketResponse) -> str:
    """Read (and ignore) what the client sends, so pongs and close frames are handled."""
    async for msg in ws:
        if msg.type == WSMsgType.ERROR:
            break
    return "timeout" if isinstance(ws.exception(), asyncio.TimeoutError) else "gone"  # no pong to our ping


async def _race(sending, reading) -> str:

    send_task = asyncio.ensure_future(sending)
    done, _ = await asyncio.wait({send_task, reading}, return_when=asyncio.FIRST_COMPLETED)
    if send_task in done:
        return send_task.result()
    send_task.cancel()
    return reading.result()
