"""`python -m cmer_edge.bench serve`: what the display server costs, on a long generated dialogue.

One run of `python -m cmer_edge.serve --realtime --asr external` on an espeak-ng dialogue, its
utterances in blocks of `--block` (5) with 2.5 s of silence between blocks: the clients connect or
leave in the middle of that silence (after the last block's final events, before the next block's
first word), and they are connected during every second block and gone during the others, so both
conditions share the same server process, warm caches and minutes of machine time (consecutive
runs of the same server on a 2-vCPU VM differ by 10-50 % in p50; in this design a slow drift of the
machine's speed falls on both conditions alike). The first block is warm-up and not scored.
  off: no client connected;
  on:  ten clients: the page in headless Chromium (delivery latency: the event's creation in the
       recognizer thread -> the page's WebSocket handler, same clock), eight WebSocket readers and one
       client that stops reading after the handshake (it must be closed and counted).
Prints per-stage recognizer latencies (p50/p95) of the events of off and on blocks, the on/off p50
ratio and, as the method's own noise, the ratio between the two halves of the off blocks (alternate
off blocks); the server process's CPU time per second in each condition; the delivery latency
p50/p95/max; whether the eight readers got the same gap-free events including every event of their
blocks; and the server's drop counters.
Needs espeak-ng, aiohttp and, for the page, selenium with the system chromium + chromedriver.

    python -m cmer_edge.bench serve --utterances 100 --server-cpus 0 --client-cpus 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from cmer_edge.testing.espeak import speak
from cmer_edge.testing.scenes import write_scene

PHRASES = [("Hi! Oh my god, I am so happy to see you!", 175, 70), ("Wait, what? You broke my phone?", 160, 60),
           ("I'm really sorry. I feel terrible about it.", 130, 35),
           ("Get out! I never want to see you again!", 185, 55),
           ("Fine. Let's talk about it tomorrow.", 150, 45), ("Okay, that sounds good to me.", 165, 50)]
# (event stage, latency stage): close -> provisional event, and the final event's stages
STAGES = (("provisional", "total"), ("final", "audio_features"), ("final", "text_encoder"), ("final", "head"),
          ("final", "total"))


BLOCK_GAP_S = 2.5  # silence before each block: the last block's final events are out before clients come or go


def write_dialogue(path: Path, n: int, gap_s: float, block: int):
    voices = [(t, speak(t, speed_wpm=w, pitch=p)) for t, w, p in PHRASES]
    gaps = [BLOCK_GAP_S if i and i % block == 0 else gap_s for i in range(n)]
    return write_scene(path, [voices[i % len(voices)] for i in range(n)], gaps, noise_dbfs=-60)


def _cpus(text: str) -> set[int]:
    """"0,2-3" -> {0, 2, 3}, each an existing CPU."""
    try:
        cpus = {c for part in text.split(",") for c in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"CPU list must look like 0 or 0,2-3, got {text!r}") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise argparse.ArgumentTypeError(f"CPU list {text!r} is not among this process's CPUs {sorted(allowed)}")
    return cpus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def start_server(wav: Path, truth, port: int, cpus: set[int] | None = None,
                 extra: list[str] = ()) -> subprocess.Popen:
    """The server (recognizer + event loop) as its own process, on `cpus` when given."""
    proc = subprocess.Popen([sys.executable, "-m", "cmer_edge.serve", "--input", str(wav), "--realtime", "--asr",
                             "external", "--port", str(port), *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if "http://" not in proc.stdout.readline():
        proc.kill()
        raise RuntimeError("serve did not start")
    t0 = proc.t0 = time.monotonic()  # the realtime source starts as the server is ready

    def feed_text() -> None:  # like a robot's ASR: each transcript shortly before its utterance ends
        try:
            for t in truth:
                time.sleep(max(0.0, t0 + t.start_s - time.monotonic()))
                proc.stdin.write(json.dumps({"text": t.text, "start_s": t.start_s, "end_s": t.end_s}) + "\n")
                proc.stdin.flush()
            proc.stdin.close()
        except (BrokenPipeError, ValueError):  # the server stopped first
            pass

    threading.Thread(target=feed_text, daemon=True).start()
    return proc


def wait_finished(port: int) -> dict:
    while True:
        health = get_json(f"http://127.0.0.1:{port}/healthz")
        if health["recognizer"] not in ("starting", "running"):
            return health
        time.sleep(1.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def stalled_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return s  # never read again


async def reader(port: int, out: list, done: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
        while not done.is_set():
            try:
                msg = await ws.receive(timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            data = json.loads(msg.data)
            if data["type"] == "event":
                out.append(data["seq"])


def open_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def percentile(values, q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def stage_table(events: list[dict]) -> dict[str, tuple[float, float]]:
    out = {}
    for event_stage, stage in STAGES:
        values = [m["event"]["latency_ms"][stage] for m in events
                  if stage in m["event"]["latency_ms"] and m["event"].get("stage", "final") == event_stage]
        out[f"{event_stage} {stage}"] = (percentile(values, 0.5), percentile(values, 0.95))
    return out


def block_of(events: list[dict], truth, block: int) -> list[int]:
    """The block of each event: its utterance (nearest scripted start) // block."""
    starts = [t.start_s for t in truth]
    return [min(range(len(starts)), key=lambda i: abs(starts[i] - m["event"]["start_s"])) // block for m in events]


def switch_times(truth, block: int) -> list[tuple[float, int]]:
    """(seconds after the source started, block) at the middle of the gap before each block's first utterance."""
    return [((truth[i - 1].end_s + truth[i].start_s) / 2, i // block) for i in range(block, len(truth), block)]


def run_interleaved(wav: Path, truth, block: int, browser: bool, server_cpus: set[int] | None,
                    extra: list[str]) -> dict:
    port = free_port()
    proc = start_server(wav, truth, port, server_cpus, extra)
    driver = open_browser() if browser else None
    cpu = {"on": 0.0, "off": 0.0}
    seconds = {"on": 0.0, "off": 0.0}
    readers: dict[int, list[list[int]]] = {}
    latencies: list[float] = []

    def account(condition: str | None, mark: float, mark_t: float) -> tuple[float, float]:
        """Book the server's CPU and wall time since (mark, mark_t) to `condition` (None: warm-up)."""
        now, now_t = cpu_seconds(proc.pid), time.monotonic()
        if condition is not None:
            cpu[condition] += now - mark
            seconds[condition] += now_t - mark_t
        return now, now_t

    async def clients() -> None:
        loop = asyncio.get_running_loop()
        mark, mark_t, condition = cpu_seconds(proc.pid), time.monotonic(), None
        done, tasks, stalled = None, [], None
        for at_s, b in switch_times(truth, block):
            await asyncio.sleep(max(0.0, proc.t0 + at_s - time.monotonic()))
            (mark, mark_t), condition = account(condition, mark, mark_t), ("on" if b % 2 else "off")
            if condition == "on":
                done = asyncio.Event()
                readers[b] = [[] for _ in range(8)]
                tasks = [asyncio.ensure_future(reader(port, out, done)) for out in readers[b]]
                stalled = stalled_client(port)
                if driver is not None:
                    await loop.run_in_executor(None, driver.get, f"http://127.0.0.1:{port}/")
            else:
                await _disconnect(loop, driver, done, tasks, stalled, latencies)
                done, tasks, stalled = None, [], None
        await loop.run_in_executor(None, wait_finished, port)
        account(condition, mark, mark_t)
        await _disconnect(loop, driver, done, tasks, stalled, latencies)

    try:
        asyncio.run(clients())
        health = get_json(f"http://127.0.0.1:{port}/healthz")
        events = get_json(f"http://127.0.0.1:{port}/events?since=0")["events"]
    finally:
        if driver is not None:
            driver.quit()
        stop(proc)
    return {"events": events, "health": health, "latencies": latencies, "readers": readers,
            "cpu_per_s": {k: cpu[k] / seconds[k] if seconds[k] else float("nan") for k in cpu}}


async def _disconnect(loop, driver, done, tasks, stalled, latencies: list[float]) -> None:
    if done is None:
        return
    done.set()
    await asyncio.gather(*tasks)
    stalled.close()
    if driver is not None:
        latencies += await loop.run_in_executor(None, driver.execute_script, "return window.cmerKiosk.latencies")
        await loop.run_in_executor(None, driver.get, "about:blank")


def readers_ok(readers: dict[int, list[list[int]]], events: list[dict], blocks: list[int]) -> tuple[int, int]:
    """(readers that got gap-free events including every event of their block, readers)."""
    ok = total = 0
    for b, outs in readers.items():
        wanted = {m["seq"] for m, mb in zip(events, blocks) if mb == b}
        for seqs in outs:
            total += 1
            ok += bool(seqs) and seqs == list(range(seqs[0], seqs[-1] + 1)) and wanted <= set(seqs)
    return ok, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bench serve", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--utterances", type=int, default=100)
    p.add_argument("--block", type=int, default=5, help="utterances per block; clients come and go between blocks")
    p.add_argument("--gap", type=float, default=0.7, help="silence between utterances (s)")
    p.add_argument("--no-browser", action="store_true", help="skip the page (no delivery latency)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    p.add_argument("--server-cpus", type=_cpus, default=None,
                   help="CPUs of the server process, e.g. 0 (default: all)")
    p.add_argument("--client-cpus", type=_cpus, default=None,
                   help="CPUs of the clients (this process, the readers, Chromium), e.g. 1 (default: all): a "
                        "robot's other processes or remote screens, kept off the server's cores")
    p.add_argument("--loop-nice", type=int, default=None, help="serve's --loop-nice (default: its own)")
    args = p.parse_args(argv)
    if args.block < 1 or args.utterances < 3 * args.block:
        p.error(f"need --block >= 1 and --utterances >= 3 blocks, got --block {args.block} --utterances "
                f"{args.utterances}")
    extra = [] if args.loop_nice is None else ["--loop-nice", str(args.loop_nice)]
    if args.client_cpus:
        os.sched_setaffinity(0, args.client_cpus)  # inherited by chromedriver and Chromium
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "dialogue.wav"
        truth = write_dialogue(wav, args.utterances, args.gap, args.block)
        print(f"dialogue: {len(truth)} utterances, {truth[-1].end_s:.0f} s, realtime; machine load: "
              f"{os.getloadavg()[0]:.1f} (1-min average); {os.cpu_count()} CPUs, server on "
              f"{sorted(args.server_cpus or range(os.cpu_count()))}, clients on "
              f"{sorted(os.sched_getaffinity(0))}; serve {' '.join(extra) or 'defaults'}", flush=True)
        r = run_interleaved(wav, truth, args.block, browser=not args.no_browser, server_cpus=args.server_cpus,
                            extra=extra)
    events, blocks = r["events"], block_of(r["events"], truth, args.block)
    off = [m for m, b in zip(events, blocks) if b > 0 and b % 2 == 0]
    on = [m for m, b in zip(events, blocks) if b % 2 == 1]
    half = [[m for m, b in zip(events, blocks) if b > 0 and b % 4 == k] for k in (2, 0)]
    print(f"{len(events)} events: {len(on)} in blocks with clients, {len(off)} without, "
          f"{len(events) - len(on) - len(off)} warm-up", flush=True)
    off_t, on_t, h1, h2 = (stage_table(x) for x in (off, on, *half))
    print("\n| stage | no clients p50 / p95 (ms) | 10 clients, 1 stalled p50 / p95 (ms) | p50 ratio "
          "| noise: p50 ratio of the two halves of the no-client blocks |")
    print("| --- | --- | --- | --- | --- |")
    for stage in off_t:
        (a50, a95), (b50, b95) = off_t[stage], on_t[stage]
        print(f"| {stage} | {a50:.1f} / {a95:.1f} | {b50:.1f} / {b95:.1f} | {b50 / a50:.2f} "
              f"| {h2[stage][0] / h1[stage][0]:.2f} |")
    c = r["cpu_per_s"]
    print(f"\nserver CPU (all threads, per second of wall time): without clients {100 * c['off']:.1f} %, with "
          f"{100 * c['on']:.1f} % of one core ({100 * (c['on'] - c['off']):+.1f} points)")
    lat = r["latencies"]
    if lat:
        print(f"\ndelivery (event created -> page's WebSocket handler), {len(lat)} events: p50 "
              f"{percentile(lat, 0.5):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, max {max(lat):.0f} ms")
    h = r["health"]
    ok, total = readers_ok(r["readers"], events, blocks)
    print(f"readers with the same gap-free events, every event of their block included: {ok} of {total} "
          f"({len(r['readers'])} blocks x 8); events {len(events)}; stalled clients: dropped "
          f"{h['dropped_clients']} (queue full), timed out {h.get('timed_out_clients', 0)} (no pong); "
          f"refused {h['rejected_clients']}")
    if args.json:
        args.json.write_text(json.dumps({"off": off_t, "on": on_t, "off_halves": [h1, h2], "cpu_per_s": c,
                                         "latencies": lat, "health": h, "readers_ok": [ok, total]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
