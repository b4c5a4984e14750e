"""The event hub: bounded history, one bounded queue per client, drop policy. Runs on the event loop.

    hub = Hub(HubConfig(history=1000, client_queue=64, max_clients=16))
    loop.call_soon_threadsafe(hub.publish_event, event.to_dict(), time.time())  # from the recognizer thread
    hub.publish_status({...})                                                   # from the loop, ~2 Hz
    await hub.serve_client(send)     # per connection: sends every message until it is dropped or gone

Every event gets a sequence number `seq` (1, 2, ... per server run, with a random `instance` id so a
page can tell a restarted server). Messages are JSON text, serialised once for all clients:
    {"type": "event", "seq": 7, "created_unix_ms": 1.7e12, "event": {EmotionEvent.to_dict()}}
    {"type": "status", ...}
Overrun policy: `publish_*` never waits. A client whose queue is full (it reads slower than events
come, or not at all) is dropped: its connection is closed, `stats.dropped_clients` counts it and a
warning is logged; every other client is unaffected. The history keeps the last `history` events
for `/events?since=N` and for pages that reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class HubConfig:
    history: int = 1000          # events kept for /events and reconnecting pages
    client_queue: int = 64       # messages waiting per client before it counts as stalled
    max_clients: int = 16        # WebSocket clients at once; more are refused (503)

    def __post_init__(self) -> None:
        for name in ("history", "client_queue", "max_clients"):
            if getattr(self, name) < 1:
                raise ValueError(f"HubConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class HubStats:
    events: int = 0               # events published
    clients: int = 0              # connected now
    clients_total: int = 0        # ever accepted
    rejected_clients: int = 0     # refused: max_clients reached
    dropped_clients: int = 0      # closed by the server: queue full (stalled or too slow)
    timed_out_clients: int = 0    # closed: no answer to the WebSocket ping


class ClientDropped(Exception):
    """The client's queue overflowed; its connection must be closed."""


class _Client:
    def __init__(self, ident: int, queue_size: int) -> None:
        self.ident = ident
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.overflowed = asyncio.Event()
        self.sent = 0
        self.task: asyncio.Task | None = None

    def offer(self, text: str) -> bool:
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            self.overflowed.set()
            return False


class Hub:
    def __init__(self, config: HubConfig = HubConfig(), labels: tuple[str, ...] = ()) -> None:
        self.config = config
        self.labels = tuple(labels)
        self.instance = secrets.token_hex(4)
        self.stats = HubStats()
        self._seq = 0
        self._history: deque[tuple[int, dict, str]] = deque(maxlen=config.history)
        self._clients: dict[int, _Client] = {}
        self._next_ident = 0
        self.last_status: dict = {}

    # -- publishing (event loop thread) -----------------------------------------------------------
    @property
    def latest_seq(self) -> int:
        return self._seq

    def publish_event(self, event: dict, created_unix_s: float) -> int:
        """Add one event (EmotionEvent.to_dict()) created at `created_unix_s`; returns its seq."""
        self._seq += 1
        msg = {"type": "event", "seq": self._seq, "created_unix_ms": round(created_unix_s * 1000.0, 3),
               "event": event}
        text = json.dumps(msg, ensure_ascii=False)
        self._history.append((self._seq, msg, text))
        self.stats.events += 1
        self._broadcast(text)
        return self._seq

    def publish_status(self, status: dict) -> None:
        self.last_status = status
        self._broadcast(json.dumps({"type": "status", **status}, ensure_ascii=False))

    def _broadcast(self, text: str) -> None:
        for client in list(self._clients.values()):
            if not client.offer(text) and client.overflowed.is_set() and client.ident in self._clients:
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        del self._clients[client.ident]
        if client.task is not None:
            client.task.cancel()  # wherever it waits (a send to a stalled peer): serve_client returns "dropped"
        self.stats.clients = len(self._clients)
        self.stats.dropped_clients += 1
        log.warning("serve: client %d dropped: %d messages waiting (queue full; it reads too slowly or not at "
                    "all); %d dropped so far", client.ident, client.queue.qsize(), self.stats.dropped_clients)

    # -- history ---------------------------------------------------------------------------------
    def events_since(self, since: int, limit: int | None = None) -> list[dict]:
        """Event messages with seq > since, oldest first, at most `limit` (the newest ones)."""
        out = [msg for seq, msg, _ in self._history if seq > since]
        return out[-limit:] if limit else out

    def hello(self) -> dict:
        oldest = self._history[0][0] if self._history else self._seq + 1
        return {"type": "hello", "instance": self.instance, "labels": list(self.labels),
                "latest_seq": self._seq, "oldest_seq": oldest, "history": self.config.history}

    # -- clients ---------------------------------------------------------------------------------
    def has_room(self) -> bool:
        return len(self._clients) < self.config.max_clients

    def reject(self) -> None:
        self.stats.rejected_clients += 1
        log.warning("serve: refused a client: %d clients connected (max_clients)", len(self._clients))

    async def serve_client(self, send: Callable[[str], Awaitable[None]]) -> str:
        """Send every message to one client until it is dropped (returns "dropped": its queue
        overflowed, wherever it was waiting) or `send` fails (returns "gone"). Sends the hello message
        first. The caller closes the connection. Run it as its own task: a drop cancels that task."""
        self._next_ident += 1
        client = _Client(self._next_ident, self.config.client_queue)
        self._clients[client.ident] = client
        self.stats.clients, self.stats.clients_total = len(self._clients), self.stats.clients_total + 1
        client.offer(json.dumps(self.hello()))
        if self.last_status:
            client.offer(json.dumps({"type": "status", **self.last_status}))
        client.task = asyncio.current_task()
        try:
            while True:
                text = await client.queue.get()
                try:
                    await send(text)
                except (ConnectionError, RuntimeError, OSError):
                    return "gone"
                client.sent += 1
        except asyncio.CancelledError:
            if client.overflowed.is_set():  # cancelled by _drop(), not by our caller
                return "dropped"
            raise
        finally:
            if self._clients.pop(client.ident, None) is not None:
                self.stats.clients = len(self._clients)

    def count_timeout(self) -> None:
        self.stats.timed_out_clients += 1
