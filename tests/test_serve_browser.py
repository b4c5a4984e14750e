"""The display page in a real browser (headless system Chromium driven by Selenium):
`python -m cmer_edge.serve` on a generated dialogue; the DOM must show exactly the events the server
emitted (compared with /events, not with fixed labels), the probability bars must match the current
event, delivery latency is bounded, and the connection indicator reconnects across a server restart.
With CMER_EDGE_KIOSK_SCREENSHOT=path the 1280x800 page is saved there (docs/img/kiosk.png)."""

from __future__ import annotations

import importlib.util
import os
import signal
import time

import pytest

from conftest import need
from helpers.serve import (InProcessServer, ScriptedRecognizer, ServeProcess, chromium_paths, free_port,
                           make_event, start_chromium, write_dialogue)


@pytest.fixture(scope="module")
def browser():
    browser_path, driver_path = chromium_paths()
    need(importlib.util.find_spec("aiohttp") is not None, "aiohttp is not installed: pip install cmer_edge[serve]")
    need(importlib.util.find_spec("selenium") is not None, "selenium is not installed (pip install cmer_edge[test])")
    need(browser_path is not None and driver_path is not None,
         "Chromium and its WebDriver are not installed (apt-get install chromium chromium-driver)")
    driver = start_chromium()
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout_s: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or script}")


DOM_ROWS = """return [...document.querySelectorAll('#transcript li')].map(li => ({
  id: Number(li.dataset.utteranceId), label: li.dataset.label, stage: li.dataset.stage,
  chip: li.querySelector('.chip').textContent, text: li.querySelector('.t-text').textContent}));"""
DOM_BARS = """return [...document.querySelectorAll('#bars .bar')].map(b => ({
  label: b.dataset.label, prob: Number(b.dataset.prob), shown: b.querySelector('.bar-label').textContent,
  width: parseFloat(b.querySelector('.bar-fill').style.width), value: b.querySelector('.bar-value').textContent}));"""


def latest_per_utterance(messages: list[dict]) -> dict[int, dict]:
    """What the page must show: per utterance, the final event, else the latest provisional one."""
    out: dict[int, dict] = {}
    for m in messages:
        e = m["event"]
        old = out.get(e["utterance_id"])
        if old is None or old.get("stage", "final") != "final" or e.get("stage", "final") == "final":
            out[e["utterance_id"]] = e
    return out


def check_page_matches_server(driver, server_events: list[dict]) -> None:
    expected = latest_per_utterance(server_events)
    wait_for(driver, f"return document.querySelectorAll('#transcript li').length === {len(expected)} && "
                     f"window.cmerKiosk.lastSeq === {server_events[-1]['seq']}", 30, "the page to show every event")
    rows = driver.execute_script(DOM_ROWS)
    assert [r["id"] for r in rows] == sorted(expected)
    for row in rows:
        e = expected[row["id"]]
        assert row["label"] == (e["label"] or "") and row["chip"] == (e["label"] or "none"), (row, e)
        assert row["text"] == (e["text"] or "(audio only)") and row["stage"] == e.get("stage", "final"), (row, e)
    current = expected[max(expected)]
    assert driver.execute_script("return document.getElementById('current').dataset.utteranceId") == str(max(expected))
    assert driver.execute_script("return document.getElementById('current-label').textContent") == current["label"]
    bars = driver.execute_script(DOM_BARS)
    assert [b["label"] for b in bars] == list(current["probs"]) and [b["shown"] for b in bars] == list(current["probs"])
    for bar in bars:
        p = current["probs"][bar["label"]]
        assert bar["prob"] == pytest.approx(p, abs=1e-9)
        assert bar["width"] == pytest.approx(100 * p, abs=0.01)
        assert bar["value"] == f"{round(100 * p)}%"


def test_page_shows_exactly_the_served_events_and_reconnects(browser, tmp_path):
    from cmer_edge.testing.espeak import espeak_available

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path / "dialogue.wav"
    truth = write_dialogue(wav, n=6)
    port = free_port()
    server = ServeProcess(["--input", str(wav), "--realtime", "--asr", "external"], texts=truth, port=port)
    try:
        browser.get(server.url)
        wait_for(browser, "return window.cmerKiosk && window.cmerKiosk.conn === 'open'", 20, "the WebSocket")
        health = server.wait_finished()
        assert health["recognizer"] == "finished"
        served = server.get_json("/events?since=0")["events"]
        assert len(served) >= 4, f"only {len(served)} events from a 6-utterance dialogue"
        check_page_matches_server(browser, served)
        assert any(e["event"]["text"] for e in served), "no transcript reached an event"
        stages = [(e["event"]["utterance_id"], e["event"]["stage"]) for e in served]
        assert any(stage == "provisional" for _, stage in stages), stages
        for i, (uid, stage) in enumerate(stages):  # the recognizer's own provisional events, each then final
            if stage == "provisional":
                assert stages[i + 1] == (uid, "final"), stages
        latencies = browser.execute_script("return window.cmerKiosk.latencies")
        assert len(latencies) >= len(served) // 2, "most events should arrive live, not from the history"
        p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
        assert p95 <= 500, f"delivery latency p95 {p95:.0f} ms (machine shared with a training job?)"
        assert browser.execute_script("return document.getElementById('vad').dataset.speech") in ("true", "false")
        if os.environ.get("CMER_EDGE_KIOSK_SCREENSHOT"):
            browser.save_screenshot(os.environ["CMER_EDGE_KIOSK_SCREENSHOT"])
        instance = browser.execute_script("return window.cmerKiosk.instance")
        assert server.stop(signal.SIGTERM) == 0
        wait_for(browser, "return document.getElementById('conn').dataset.state !== 'open'", 10,
                 "the indicator to show the lost connection")
        shown = browser.execute_script("return document.getElementById('conn-text').textContent")  # read once:
        assert "offline" in shown or "connecting" in shown, shown  # it flips between the two while retrying
        server = ServeProcess(["--input", str(wav), "--max-seconds", "8", "--asr", "none"], port=port)
        wait_for(browser, "return document.getElementById('conn').dataset.state === 'open'", 20,
                 "the page to reconnect by itself")
        server.wait_finished()
        served = server.get_json("/events?since=0")["events"]
        assert served and browser.execute_script("return window.cmerKiosk.instance") != instance
        check_page_matches_server(browser, served)  # the restarted server's events only
    finally:
        server.stop()


def test_provisional_is_replaced_by_final_and_never_overrides_it(browser):
    events = [make_event(0, "provisional"), make_event(0, "final", label_shift=2), make_event(1, "provisional"),
              make_event(0, "provisional", label_shift=4), make_event(2, "provisional", label_shift=1),
              make_event(2, "final", label_shift=5)]
    rec = ScriptedRecognizer(events, gap_s=0.3)
    with InProcessServer(rec) as srv:
        browser.get(srv.url)
        wait_for(browser, "return window.cmerKiosk && window.cmerKiosk.lastSeq === 6", 20, "six events")
        import json
        import urllib.request

        served = json.loads(urllib.request.urlopen(srv.url + "events").read())["events"]
        check_page_matches_server(browser, served)
        rows = browser.execute_script(DOM_ROWS)
        assert [(r["id"], r["stage"]) for r in rows] == [(0, "final"), (1, "provisional"), (2, "final")]
        assert rows[0]["label"] == served[1]["event"]["label"] != served[0]["event"]["label"]


def test_phone_layout_has_no_horizontal_scroll(browser):
    with InProcessServer(ScriptedRecognizer([make_event(i) for i in range(3)])) as srv:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 412, "height": 915, "deviceScaleFactor": 2, "mobile": True})
        try:
            browser.get(srv.url)
            wait_for(browser, "return window.cmerKiosk && window.cmerKiosk.lastSeq === 3", 20, "three events")
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 412
            font_px = browser.execute_script(
                "return parseFloat(getComputedStyle(document.getElementById('current-label')).fontSize)")
            assert font_px >= 30
        finally:
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
