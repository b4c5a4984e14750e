"""`python -m cmer_edge.bench serve`: what the display server costs, on a long generated dialogue.

Three runs of `python -m cmer_edge.serve --realtime --asr external` on the same espeak-ng dialogue,
in the order A1, B, A2 (so a slow drift of the machine's speed cancels, and A2/A1 shows the run-to-run
noise that a B/A ratio must be read against):
  A. no client connected;
  B. ten clients: the page in headless Chromium (delivery latency: the event's creation in the
     recognizer thread -> the page's WebSocket handler, same clock), eight WebSocket readers and one
     client that stops reading after the handshake (it must be dropped and counted).
Prints per-stage recognizer latencies (p50/p95) of A (A1 and A2 pooled) and B, the B/A and A2/A1 p50
ratios, the server process's CPU time per run (what serving the clients costs in CPU, apart from
latency noise), the delivery latency p50/p95/max, whether the healthy clients got exactly the events of
/events, and the server's drop counters.
Needs espeak-ng, aiohttp and, for the page, selenium with the system chromium + chromedriver.

    python -m cmer_edge.bench serve --utterances 120
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


def write_dialogue(path: Path, n: int, gap_s: float):
    voices = [(t, speak(t, speed_wpm=w, pitch=p)) for t, w, p in PHRASES]
    return write_scene(path, [voices[i % len(voices)] for i in range(n)], [gap_s] * n, noise_dbfs=-60)


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
    t0 = time.monotonic()

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


def open_page(port: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(f"http://127.0.0.1:{port}/")
    return driver


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


def run_b(wav: Path, truth, browser: bool, server_cpus: set[int] | None, extra: list[str]) -> dict:
    port = free_port()
    proc = start_server(wav, truth, port, server_cpus, extra)
    cpu0 = cpu_seconds(proc.pid)  # after loading: from here on, serving the input
    driver = open_page(port) if browser else None
    stalled = stalled_client(port)
    seqs: list[list[int]] = [[] for _ in range(8)]

    async def clients() -> None:
        done = asyncio.Event()
        tasks = [asyncio.ensure_future(reader(port, out, done)) for out in seqs]
        await asyncio.get_running_loop().run_in_executor(None, wait_finished, port)
        await asyncio.sleep(2.0)
        done.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(clients())
        cpu = cpu_seconds(proc.pid) - cpu0
        health = get_json(f"http://127.0.0.1:{port}/healthz")
        events = get_json(f"http://127.0.0.1:{port}/events?since=0")["events"]
        latencies = driver.execute_script("return window.cmerKiosk.latencies") if driver else []
    finally:
        stalled.close()
        if driver is not None:
            driver.quit()
        stop(proc)
    served = [m["seq"] for m in events]
    return {"events": events, "health": health, "latencies": latencies, "cpu_s": cpu,
            "healthy_ok": sum(s == served for s in seqs), "healthy": len(seqs)}


def run_a(wav: Path, truth, server_cpus: set[int] | None, extra: list[str]) -> dict:
    port = free_port()
    proc = start_server(wav, truth, port, server_cpus, extra)
    cpu0 = cpu_seconds(proc.pid)
    try:
        wait_finished(port)
        cpu = cpu_seconds(proc.pid) - cpu0
        events = get_json(f"http://127.0.0.1:{port}/events?since=0")["events"]
    finally:
        stop(proc)
    return {"events": events, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bench serve", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--utterances", type=int, default=120)
    p.add_argument("--gap", type=float, default=0.7, help="silence between utterances (s)")
    p.add_argument("--no-browser", action="store_true", help="skip the page (no delivery latency)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    p.add_argument("--server-cpus", type=_cpus, default=None,
                   help="CPUs of the server process in both runs, e.g. 0 (default: all)")
    p.add_argument("--client-cpus", type=_cpus, default=None,
                   help="CPUs of the clients (this process, the readers, Chromium), e.g. 1 (default: all): a "
                        "robot's other processes or remote screens, kept off the server's cores")
    p.add_argument("--loop-nice", type=int, default=None, help="serve's --loop-nice in every run (default: its own)")
    args = p.parse_args(argv)
    extra = [] if args.loop_nice is None else ["--loop-nice", str(args.loop_nice)]
    if args.client_cpus:
        os.sched_setaffinity(0, args.client_cpus)  # inherited by chromedriver and Chromium
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "dialogue.wav"
        truth = write_dialogue(wav, args.utterances, args.gap)
        print(f"dialogue: {len(truth)} utterances, {truth[-1].end_s:.0f} s, realtime; machine load: "
              f"{os.getloadavg()[0]:.1f} (1-min average); {os.cpu_count()} CPUs, server on "
              f"{sorted(args.server_cpus or range(os.cpu_count()))}, clients on "
              f"{sorted(os.sched_getaffinity(0))}; serve {' '.join(extra) or 'defaults'}", flush=True)
        a1 = run_a(wav, truth, args.server_cpus, extra)
        print(f"run A1 (no clients): {len(a1['events'])} events", flush=True)
        b = run_b(wav, truth, browser=not args.no_browser, server_cpus=args.server_cpus, extra=extra)
        print(f"run B (10 clients): {len(b['events'])} events", flush=True)
        a2 = run_a(wav, truth, args.server_cpus, extra)
        print(f"run A2 (no clients): {len(a2['events'])} events", flush=True)
    a_stages, b_stages = stage_table(a1["events"] + a2["events"]), stage_table(b["events"])
    a1_stages, a2_stages = stage_table(a1["events"]), stage_table(a2["events"])
    print("\n| stage | A: no clients p50 / p95 (ms) | B: 10 clients, 1 stalled p50 / p95 (ms) | p50 B/A "
          "| noise: p50 A2/A1 |")
    print("| --- | --- | --- | --- | --- |")
    for stage in a_stages:
        (a50, a95), (b50, b95) = a_stages[stage], b_stages[stage]
        print(f"| {stage} | {a50:.1f} / {a95:.1f} | {b50:.1f} / {b95:.1f} | {b50 / a50:.2f} "
              f"| {a2_stages[stage][0] / a1_stages[stage][0]:.2f} |")
    audio_s = truth[-1].end_s
    print(f"\nserver CPU time (all threads, after loading to end of input, {audio_s:.0f} s of audio): A1 {a1['cpu_s']:.1f} s, "
          f"B {b['cpu_s']:.1f} s, A2 {a2['cpu_s']:.1f} s; B - mean(A) = {b['cpu_s'] - (a1['cpu_s'] + a2['cpu_s']) / 2:+.1f} s "
          f"({100 * (b['cpu_s'] - (a1['cpu_s'] + a2['cpu_s']) / 2) / audio_s:+.2f} % of one core)")
    lat = b["latencies"]
    if lat:
        print(f"\ndelivery (event created -> page's WebSocket handler), {len(lat)} events: p50 "
              f"{percentile(lat, 0.5):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, max {max(lat):.0f} ms")
    h = b["health"]
    print(f"healthy WebSocket clients with exactly the events of /events: {b['healthy_ok']} of {b['healthy']}; "
          f"events {len(b['events'])}; stalled client: dropped {h['dropped_clients']} (queue full), timed out "
          f"{h.get('timed_out_clients', 0)} (no pong); refused {h['rejected_clients']}")
    if args.json:
        args.json.write_text(json.dumps({"a": a_stages, "b": b_stages, "a1": a1_stages, "a2": a2_stages,
                                         "cpu_s": {"a1": a1["cpu_s"], "b": b["cpu_s"], "a2": a2["cpu_s"]},
                                         "latencies": lat, "health": h}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
