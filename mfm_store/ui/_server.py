"""Serving the inspector on a loopback address with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
import webbrowser
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TextIO

import uvicorn

from ..stores import Store
from ._app import create_app

__all__ = ["bind_loopback", "serve_store"]


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host``:``port`` (0: a free port); loopback only."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be a loopback address (127.0.0.1 or ::1), not {host}")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, announcing itself once listening, and ending on SIGINT/SIGTERM
    without re-raising the signal (so the store is closed and the caller returns 0)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        originals = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


async def serve_store(store: Store, *, label: str, host: str = "127.0.0.1", port: int = 0,
                      open_browser: bool = False, out: TextIO | None = None) -> None:
    """Serve the inspector over an open ``store`` until SIGINT/SIGTERM (Ctrl-C).

    Listens on ``host`` (a loopback address) and ``port`` (0: a free one) and prints
    ``serving <label> at http://HOST:PORT/`` once it accepts connections; ``open_browser``
    then opens that address in the user's browser. Only requests whose ``Host`` header names
    this address and port (or ``localhost`` with this port) are answered.
    """
    stream = sys.stdout if out is None else out
    sock = bind_loopback(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/"
    allowed = {f"{shown}:{bound_port}", f"localhost:{bound_port}"}
    app = create_app(store, allowed_hosts=allowed, label=label)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            server_header=False, date_header=False)

    background: set[asyncio.Task[None]] = set()

    def started() -> None:
        stream.write(f"mfm-store ui: serving {label} at {url} (read-only; Ctrl-C stops)\n")
        stream.flush()
        if open_browser:
            task = asyncio.get_running_loop().create_task(_open(url, stream))
            background.add(task)
            task.add_done_callback(background.discard)

    server = _Server(config, started)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        await app.aclose()
    stream.write("mfm-store ui: stopped\n")
    stream.flush()


async def _open(url: str, stream: TextIO) -> None:
    opened = await asyncio.to_thread(webbrowser.open, url)
    stream.write(f"mfm-store ui: {'opened' if opened else 'could not open'} {url} in a "
                 "browser\n")
    stream.flush()
