"""jetson/systemd's kiosk pair: the server unit runs `python -m cmer_edge.serve` with its settings from
/etc/default/cmer-edge, the Chromium unit waits for /healthz and opens the page in --kiosk mode;
both verify with systemd-analyze (with the other units, in test_export_jetson.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[1] / "jetson" / "systemd"


def unit_lines(name: str) -> list[str]:
    return (SYSTEMD / name).read_text().replace("\\\n", " ").splitlines()


def test_server_unit():
    lines = unit_lines("cmer-edge-serve.service")
    for line in ("ExecStart=/usr/bin/python3 -m cmer_edge.serve $CMER_EDGE_SERVE_ARGS", "KillSignal=SIGTERM",
                 "Restart=on-failure", "EnvironmentFile=/etc/default/cmer-edge",
                 "Conflicts=cmer-edge-listen.service", "WantedBy=multi-user.target"):
        assert line in lines, line


def test_kiosk_unit_and_settings():
    lines = unit_lines("cmer-edge-kiosk.service")
    start = next(line for line in lines if line.startswith("ExecStart="))
    argv = shlex.split(start.removeprefix("ExecStart="))
    assert "--kiosk" in argv and argv[-1] == "${CMER_EDGE_URL}" and "chromium" in argv[:2]
    assert "Environment=CMER_EDGE_URL=http://127.0.0.1:8765/" in lines
    assert any(line.startswith("ExecStartPre=") and "healthz" in line for line in lines)
    assert "WantedBy=graphical-session.target" in lines and "Restart=always" in lines
    env = (SYSTEMD / "cmer-edge.env").read_text().splitlines()
    args = next(line for line in env if line.startswith("CMER_EDGE_SERVE_ARGS="))
    from cmer_edge.serve.__main__ import build_parser

    parsed = build_parser().parse_args(shlex.split(args.split("=", 1)[1]))  # the settings parse
    assert parsed.host == "127.0.0.1" and parsed.port == 8765


def test_bench_serve_cpu_lists_are_parsed_and_checked_against_this_process():
    import argparse
    import os

    from cmer_edge.bench.serve import _cpus

    first = min(os.sched_getaffinity(0))
    assert _cpus(str(first)) == {first} and _cpus(f"{first}-{first}") == {first}
    for bad in ("a", "", "1-x", "100000"):
        with pytest.raises(argparse.ArgumentTypeError):
            _cpus(bad)


def test_bench_serve_reads_a_process_cpu_time_from_proc():
    import os
    import time

    from cmer_edge.bench.serve import cpu_seconds

    before, t = cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - t < 0.3:  # burn 0.3 s of CPU
        pass
    spent = cpu_seconds(os.getpid()) - before
    assert 0.2 <= spent <= 1.0, spent  # clock ticks (10 ms) of this process's user + system time


def test_bench_serve_blocks_switch_in_the_silence_and_check_readers():
    from types import SimpleNamespace as U

    from cmer_edge.bench.serve import block_of, readers_ok, switch_times

    truth = [U(start_s=4.0 * i + 0.5, end_s=4.0 * i + 3.0) for i in range(6)]
    assert switch_times(truth, 2) == [(7.75, 1), (15.75, 2)]  # mid-silence before utterances 2 and 4
    events = [{"seq": k + 1, "event": {"start_s": truth[k // 2].start_s + 0.05}} for k in range(12)]
    blocks = block_of(events, truth, 2)
    assert blocks == [0] * 4 + [1] * 4 + [2] * 4
    good, gap, short = [5, 6, 7, 8], [5, 7, 8], [6, 7, 8]
    assert readers_ok({1: [good, good]}, events, blocks) == (2, 2)
    assert readers_ok({1: [good, gap, short, []]}, events, blocks) == (1, 4)
