"""A real HTTP server on 127.0.0.1 (a free port) for the HTTP transport's tests.

Endpoints (GET unless said):
  /json                  JSON with floats; /text  UTF-8 text; /latin1  ISO-8859-1 text
  /binary?n=N            N bytes 0..255 repeated (application/octet-stream)
  /big?mib=M             M MiB of deterministic bytes; /bigjson?mib=M  a JSON array that big
  /redirect?to=PATH      302 to PATH; /redirect-loop  redirects to itself
  /slow                  never answers until the server stops (for timeouts)
  /limited?id=I&n=N      429 with Retry-After: 1 for the first N requests of I, then JSON
  /busy                  503 with Retry-After: 2; /fail  500; /missing  404 with a JSON body
  /echo                  (any method) JSON of the method, path, query, headers and body seen
  /cookies               JSON, with Set-Cookie and X-Api-Key response headers
  /token                 JSON holding an access_token
  POST /orders           applies an order once per Idempotency-Key (``effects`` counts);
                         with ?hold=1 it applies, sets ``applied`` and waits for ``release``
                         before answering
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON_BODY = b'{"price": 101.25, "qty": 3, "tiny": 1e-07, "name": "caf\\u00e9"}'
TEXT_BODY = "héllo, wörld\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away
            super().handle_error(request, client_address)


def big_bytes(mib: int) -> bytes:
    block = hashlib.sha256(b"block").digest() * 32  # 1 KiB
    return block * (1024 * mib)


def big_json(mib: int) -> bytes:
    item = b'{"x": 1.5, "y": "abcdefghij"}'
    n = (mib * 1024 * 1024) // (len(item) + 2)
    return b"[" + b", ".join([item] * n) + b"]"


class LocalServer:
    """Start with ``start()`` (or ``with``), stop with ``stop()``; ``url`` is its base URL."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.effects = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.applied = threading.Event()
        self.release = threading.Event()
        self._stop = threading.Event()
        self._limited: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, path: str, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["path"] == path
                       and (method is None or r["method"] == method))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as written

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str | None,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                if content_type is not None:
                    self.send_header("Content-Type", content_type)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, value: Any, **headers: str) -> None:
                self._send(status, json.dumps(value).encode(), "application/json", headers)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = {"method": self.command, "path": parts.path, "query": query,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "header_list": [(k.lower(), v) for k, v in self.headers.items()],
                        "body": body.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append(seen)
                route = getattr(self, "_r_" + parts.path.strip("/").replace("-", "_"), None)
                if route is None:
                    self._json(404, {"error": "no such path"})
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(query, body, seen)  # the client may be gone (killed, timed out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def _r_json(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, JSON_BODY, "application/json")

            def _r_text(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, TEXT_BODY.encode(), "text/plain; charset=utf-8")

            def _r_latin1(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, TEXT_BODY.encode("latin-1"), "text/plain; charset=ISO-8859-1")

            def _r_binary(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                n = int(q.get("n", "1024"))
                self._send(200, bytes(i % 256 for i in range(n)), "application/octet-stream")

            def _r_big(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, big_bytes(int(q.get("mib", "1"))), "application/octet-stream")

            def _r_bigjson(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, big_json(int(q.get("mib", "1"))), "application/json")

            def _r_redirect(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(302, b"", None, {"Location": q.get("to", "/json")})

            def _r_redirect_loop(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(302, b"", None, {"Location": "/redirect-loop"})

            def _r_slow(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                server._stop.wait()

            def _r_limited(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                with server._lock:
                    n = server._limited.get(q["id"], 0)
                    server._limited[q["id"]] = n + 1
                if n < int(q.get("n", "1")):
                    self._json(429, {"error": "slow down"}, **{"Retry-After": "1"})
                else:
                    self._json(200, {"ok": True, "after": n})

            def _r_busy(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._json(503, {"error": "busy"}, **{"Retry-After": "2"})

            def _r_fail(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._json(500, {"error": "boom"})

            def _r_missing(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._json(404, {"error": "not here", "score": 0.5})

            def _r_echo(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._json(200, {"method": seen["method"], "query": q,
                                 "idempotency_key": seen["headers"].get("idempotency-key"),
                                 "body": seen["body"]})

            def _r_cookies(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._send(200, b'{"ok": true}', "application/json",
                           {"Set-Cookie": "sid=cookie-value-7c1d9e; HttpOnly",
                            "X-Api-Key": "response-key-4b8a2f", "ETag": '"v1"'})

            def _r_token(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                self._json(200, {"access_token": "tok-1234", "expires_in": 3600})

            def _r_orders(self, q: dict[str, str], body: bytes, seen: Any) -> None:
                key = seen["headers"].get("idempotency-key")
                with server._lock:
                    known = server.orders.get(key) if key is not None else None
                    if known is None:
                        server.effects += 1
                        known = {"order": json.loads(body or b"{}"),
                                 "ticket": f"T-{server.effects:04d}", "key": key}
                        if key is not None:
                            server.orders[key] = known
                if q.get("hold") == "1":
                    server.applied.set()
                    server.release.wait()
                self._json(201, known)

        return Handler
