"""`cmer_edge.serve`: the live recognizer behind a local HTTP/WebSocket server and a display page.

    python -m cmer_edge.serve --input talk.wav --realtime     # then open http://127.0.0.1:8765/

Layers: `hub` (history, per-client bounded queues, drop policy; asyncio only), `feed` (the
recognizer in its own thread, input level, status), `app` (aiohttp routes, token, page assets),
`server` (runs them together, signals, shutdown), `static/` (the page: HTML, CSS, JS, no CDN).
Needs the `serve` extra (aiohttp). The serve layer imports the runtime, never the reverse.
"""
