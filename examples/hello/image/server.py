"""hello: a second app for the webapp-platform components, deliberately unlike the bundled one.

The standard library's threading HTTP server, no Flask and no gunicorn: one port (PORT, 9000 by default) serving
`/` and its probes `/livez` and `/readyz`. It does not drain itself: on SIGTERM it stops accepting, finishes the
requests in flight and exits 0, so it relies on the contract's preStop wait (the kubelet sleeps before SIGTERM
while the endpoints drop the pod). Requests may ask for a delay (`/?delay=0.2`, at most 5 s) so a test can keep
some in flight across a rollout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlsplit

MAX_DELAY_SECONDS = 5.0
VERSION = os.environ.get("APP_VERSION", "unknown")


class Handler(BaseHTTPRequestHandler):
    """Answers `/`, `/livez` and `/readyz` with JSON; anything else is 404."""

    server_version = "hello"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idle holds the shutdown

    def do_GET(self) -> None:
        """One GET: the probes, or the greeting after an optional bounded delay."""
        url = urlsplit(self.path)
        if url.path in ("/livez", "/readyz"):
            self._json(200, {"status": "ok"})
        elif url.path == "/":
            try:
                delay = float(parse_qs(url.query).get("delay", ["0"])[0])
            except ValueError:
                self._json(400, {"error": "delay must be a number of seconds"})
                return
            time.sleep(min(max(delay, 0.0), MAX_DELAY_SECONDS))
            self._json(200, {"app": "hello", "version": VERSION, "uid": os.getuid()})
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """One JSON line per request on stdout, as a log collector wants it."""
        print(json.dumps({"event": "request", "line": format % args}), flush=True)


def main() -> int:
    """Serve until SIGTERM or SIGINT, then finish what is in flight and exit 0."""
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "9000"))), Handler)
    server.daemon_threads = False  # server_close() waits for every request thread

    def stop(signum: int, _frame: FrameType | None) -> None:
        print(json.dumps({"event": "stopping", "signal": signal.Signals(signum).name}), flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"event": "serving", "port": server.server_address[1], "version": VERSION}), flush=True)
    server.serve_forever()
    server.server_close()
    print(json.dumps({"event": "stopped"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
