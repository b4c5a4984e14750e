"""`python -m cmer_edge.serve`: the live recognizer plus a local display page and event stream.

Open the printed URL (http://127.0.0.1:8765/ by default) in a browser: the current utterance's
transcript and emotion, probability bars, the transcript so far and an emotion timeline. Programs
read the same events from ws://HOST:PORT/ws or GET /events?since=N. Exit codes: 0 ok (stopped by
SIGINT/SIGTERM), 2 bad input (no microphone, unreadable file, bad bundle, port in use, a
non-loopback --host without a usable token), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys

from cmer_edge.cli_recognizer import add_recognizer_arguments, list_devices, open_source

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.serve", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m cmer_edge.serve                         # microphone; open http://127.0.0.1:8765/\n"
               "  python -m cmer_edge.serve --input python/cmer_edge/examples/dialogue.flac --realtime\n"
               "  python -m cmer_edge.serve --host 0.0.0.0          # on the network: prints a URL with a token")
    add_recognizer_arguments(p)
    web = p.add_argument_group("server")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    web.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    web.add_argument("--token", default=None,
                     help="access token (required beyond loopback; generated and printed if not given)")
    web.add_argument("--max-clients", type=int, default=16, help="WebSocket clients at once")
    web.add_argument("--client-queue", type=int, default=64,
                     help="messages queued per client before it counts as stalled and is dropped")
    web.add_argument("--history", type=int, default=1000, help="events kept for /events and reconnects")
    web.add_argument("--loop-nice", type=int, default=0,
                     help="lower the server loop's CPU priority below the recognizer's by this much (Linux "
                          "nice, 0-19; default 0: equal). For machines where many clients crowd the recognizer's "
                          "cores; costs delivery latency (docs/benchmarks.md)")
    return p


def resolve_token(host: str, token: str | None, is_loopback) -> str | None:
    """The given token; else a generated one when `host` is reachable from other machines."""
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(18)
    return token


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s", stream=sys.stderr)
    if args.list_devices:
        return list_devices()
    try:
        from cmer_edge.serve.app import ServerConfig, is_loopback
        from cmer_edge.serve.hub import HubConfig
        from cmer_edge.serve.server import run
    except ImportError as exc:
        print(f"error: {exc}; install the server's dependencies: pip install 'cmer_edge[serve]'", file=sys.stderr)
        return 2
    try:
        config = ServerConfig(host=args.host, port=args.port, token=resolve_token(args.host, args.token, is_loopback),
                              loop_nice=args.loop_nice)
        hub_config = HubConfig(history=args.history, client_queue=args.client_queue, max_clients=args.max_clients)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from cmer_edge.audio.convert import AudioError
    from cmer_edge.audio.devices import NoInputDeviceError
    from cmer_edge.bundle import BundleError
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    try:
        source = open_source(args)
        recognizer = Recognizer(RecognizerConfig(
            bundle=str(args.bundle) if args.bundle else None, asr=args.asr, asr_model=args.asr_model,
            window_utts=args.window, device=args.device, backend=args.backend, threads=args.threads))
    except NoInputDeviceError as exc:
        print(f"error: {exc}\nuse --input file.wav on machines without a microphone", file=sys.stderr)
        return 2
    except (AudioError, BundleError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.asr == "external" and recognizer.external_text is not None:
        recognizer.external_text.start_reader(sys.stdin)

    def ready(url: str) -> None:
        print(f"serving the display at {url}  (events: ws at /ws, GET /events?since=N; Ctrl-C stops)", flush=True)

    try:
        asyncio.run(run(recognizer, source, config, hub_config, on_ready=ready))
    except OSError as exc:
        recognizer.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
