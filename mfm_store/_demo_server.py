"""The demo's market and broker: a small real HTTP server on 127.0.0.1 (a free port).

Answers are pure functions of the request, so a run recorded against it replays identically,
and prices are JSON numbers with decimals, as real APIs send them (they are recorded as text).

  GET  /market/quote?symbol=S   {"symbol": S, "price": 41.07, "currency": "USD"}
  GET  /market/fx?pair=P        {"pair": P, "rate": 0.912345}
  POST /broker/orders           {"accepted": true, "ticket": "T-..."}; applied once per
                                ``Idempotency-Key`` (a repeat gets the first answer; ``effects``
                                counts orders applied)
  GET  /broker/orders/T         {"ticket": T, "status": "filled", "filled_qty": n}

Used by the demo and the HTTP benchmark; ``start()`` / ``stop()`` or ``with DemoServer() as s``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DemoServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away
            super().handle_error(request, client_address)


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "big")


class DemoServer:
    """The market and broker on ``url`` (``http://127.0.0.1:PORT``), served by a thread."""

    def __init__(self) -> None:
        self.effects = 0
        self.requests: list[tuple[str, str]] = []
        self._orders: dict[str, dict[str, Any]] = {}
        self._tickets: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        name="mfm-demo-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DemoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, method: str, path_prefix: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    def _order(self, key: str | None, order: Any) -> dict[str, Any]:
        with self._lock:
            if key is not None and key in self._orders:
                return self._orders[key]
            self.effects += 1
            ticket = f"T-{_digest(key, order) % 10**8:08d}"
            qty = order.get("qty", 0) if isinstance(order, dict) else 0
            answer = {"accepted": True, "ticket": ticket}
            self._tickets[ticket] = qty if isinstance(qty, int) else 0
            if key is not None:
                self._orders[key] = answer
            return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as written

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, value: Any) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append(("GET", parts.path))
                if parts.path == "/market/quote" and "symbol" in q:
                    cents = 1000 + _digest("quote", q["symbol"]) % 9000
                    self._reply(200, {"symbol": q["symbol"], "price": cents / 100,
                                      "currency": "USD"})
                elif parts.path == "/market/fx" and "pair" in q:
                    ppm = 850_000 + _digest("fx", q["pair"]) % 100_000
                    self._reply(200, {"pair": q["pair"], "rate": ppm / 1_000_000})
                elif parts.path.startswith("/broker/orders/"):
                    ticket = parts.path.rsplit("/", 1)[1]
                    with server._lock:
                        qty = server._tickets.get(ticket)
                    if qty is None:
                        self._reply(404, {"error": "unknown ticket"})
                    else:
                        self._reply(200, {"ticket": ticket, "status": "filled",
                                          "filled_qty": qty})
                else:
                    self._reply(404, {"error": "no such path"})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                with server._lock:
                    server.requests.append(("POST", path))
                if path != "/broker/orders":
                    self._reply(404, {"error": "no such path"})
                    return
                try:
                    order = json.loads(raw)
                except ValueError:
                    self._reply(400, {"error": "body is not JSON"})
                    return
                self._reply(201, server._order(self.headers.get("Idempotency-Key"), order))

        return Handler


def main() -> None:
    """``python -m mfm_store._demo_server``: serve, print the URL, stop when stdin closes."""
    with DemoServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
