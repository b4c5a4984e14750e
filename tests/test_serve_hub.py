"""The event hub alone (asyncio, no network): sequence numbers, bounded history, per-client queues,
a stalled client dropped and counted while the others get every message, publishing never waits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cmer_edge.serve.hub import Hub, HubConfig  # asyncio only: no aiohttp needed


def run(coro):
    return asyncio.run(coro)


def test_config_is_validated():
    with pytest.raises(ValueError, match="client_queue"):
        HubConfig(client_queue=0)


def test_history_is_bounded_and_since_filters():
    hub = Hub(HubConfig(history=5), labels=("a", "b"))
    for i in range(8):
        assert hub.publish_event({"utterance_id": i}, 1000.0 + i) == i + 1
    kept = hub.events_since(0)
    assert [m["seq"] for m in kept] == [4, 5, 6, 7, 8]
    assert [m["event"]["utterance_id"] for m in hub.events_since(6)] == [6, 7]
    assert [m["seq"] for m in hub.events_since(0, limit=2)] == [7, 8]
    assert hub.events_since(8) == []
    hello = hub.hello()
    assert hello["latest_seq"] == 8 and hello["oldest_seq"] == 4 and hello["labels"] == ["a", "b"]
    assert kept[0]["created_unix_ms"] == pytest.approx(1_003_000.0)


def test_every_client_gets_every_message_in_order():
    async def main():
        hub = Hub(HubConfig(client_queue=4))
        got = {1: [], 2: []}

        async def sender(k):
            async def send(text):
                got[k].append(json.loads(text))
            return await hub.serve_client(send)

        tasks = [asyncio.ensure_future(sender(k)) for k in got]
        await asyncio.sleep(0)
        for i in range(50):  # more than the queue holds, but the clients keep up
            hub.publish_event({"utterance_id": i}, time.time())
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        return hub, got

    hub, got = run(main())
    for messages in got.values():
        assert messages[0]["type"] == "hello"
        assert [m["seq"] for m in messages[1:]] == list(range(1, 51))
    assert hub.stats.dropped_clients == 0 and hub.stats.clients == 0 and hub.stats.clients_total == 2


def test_stalled_client_is_dropped_and_counted_others_unaffected():
    async def main():
        hub = Hub(HubConfig(client_queue=8))
        healthy: list[dict] = []
        never = asyncio.Event()

        async def stalled_send(text):  # a peer that stopped reading: the send never completes
            await never.wait()

        async def healthy_send(text):
            healthy.append(json.loads(text))

        stalled = asyncio.ensure_future(hub.serve_client(stalled_send))
        ok = asyncio.ensure_future(hub.serve_client(healthy_send))
        await asyncio.sleep(0)
        publish_s = []
        for i in range(100):
            t = time.perf_counter()
            hub.publish_event({"utterance_id": i, "text": "x" * 500}, time.time())
            hub.publish_status({"input": {"speech": False}})
            publish_s.append(time.perf_counter() - t)
            await asyncio.sleep(0)
        outcome = await asyncio.wait_for(stalled, 1.0)
        await asyncio.sleep(0.01)
        ok.cancel()
        return hub, healthy, outcome, publish_s

    hub, healthy, outcome, publish_s = run(main())
    assert outcome == "dropped"
    assert hub.stats.dropped_clients == 1 and hub.stats.clients == 0
    assert [m["seq"] for m in healthy if m["type"] == "event"] == list(range(1, 101))
    assert max(publish_s) < 0.05, f"publishing waited {max(publish_s) * 1000:.1f} ms"


def test_failed_send_ends_the_client():
    async def main():
        hub = Hub()

        async def broken(text):
            raise ConnectionResetError("peer gone")

        return hub, await asyncio.wait_for(hub.serve_client(broken), 1.0)

    hub, outcome = run(main())
    assert outcome == "gone" and hub.stats.clients == 0 and hub.stats.dropped_clients == 0


def test_max_clients():
    hub = Hub(HubConfig(max_clients=1))
    assert hub.has_room()
    hub._clients[1] = object()  # one connected
    assert not hub.has_room()
    hub.reject()
    assert hub.stats.rejected_clients == 1


def test_the_level_tap_keeps_the_sources_live_flag_and_blocks():
    """serve reads the source through LevelTap: a microphone (or --realtime file) must stay live for
    the recognizer (drop-oldest under overload, speculative stage start), a file must not."""
    import numpy as np

    from cmer_edge.audio.sources import ArraySource
    from cmer_edge.serve.feed import LevelTap

    x = (0.1 * np.sin(np.arange(16_000) / 5.0)).astype(np.float32)
    live, offline = LevelTap(ArraySource(x, 16_000, realtime=True)), LevelTap(ArraySource(x, 16_000))
    assert live.live and not offline.live
    blocks = list(offline)
    assert sum(len(b.samples) for b in blocks) >= 16_000
    level = offline.read_level()
    assert -25 < level["rms_dbfs"] < -15 and level["stream_s"] >= 1.0
