"""The ASGI application: read-only pages over one open store.

Every response passes through :class:`_Guard`: requests whose ``Host`` is not one of the
allowed loopback names are refused (a page of another site cannot reach this server through
DNS rebinding), only ``GET``/``HEAD`` are served, and strict security headers are set. Pages
are rendered by Jinja2 with autoescaping, so stored strings are always text, never markup.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CODE_NOT_FOUND, MfmError
from ..ids import ArtifactId, RunId
from ..stores import Store
from ._data import RUNS_PAGE_SIZE, Inspector, decode_artifact
from ._model import (
    Attempt,
    Change,
    describe_backoff,
    describe_policy,
    json_diff,
    pretty_json,
)

__all__ = ["SECURITY_HEADERS", "InspectorApp", "create_app"]

_HERE = Path(__file__).parent
ATTEMPTS_PER_PAGE = 25
ITEMS_PER_ATTEMPT = 200
EVENTS_PER_PAGE = 500
_PAYLOADS_PER_PAGE = 300
_PREVIEW_CHARS = 600
_STATUSES = ("running", "completed", "failed", "cancelled")

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_RAW_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in SECURITY_HEADERS.items()]
_GUARDED = frozenset(k for k, _ in _RAW_HEADERS)


class _Guard:
    """Host check, method check and security headers around the whole application."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str]) -> None:
        self._app = app
        self._allowed = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower()
                break

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _GUARDED]
                message = {**message, "headers": headers + _RAW_HEADERS}
            await send(message)

        if host not in self._allowed:
            refuse = PlainTextResponse(
                "refused: this inspector answers only to its loopback address "
                "(Host header not allowed)\n", status_code=403)
            await refuse(scope, receive, send_with_headers)
            return
        if scope["method"] not in ("GET", "HEAD"):
            refuse = PlainTextResponse("read-only: only GET and HEAD are served\n",
                                       status_code=405, headers={"Allow": "GET, HEAD"})
            await refuse(scope, receive, send_with_headers)
            return
        await self._app(scope, receive, send_with_headers)



def _iso(millis: int | None) -> str:
    if millis is None:
        return "-"
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{millis % 1000:03d}Z"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: str | None, n: int = 12) -> str:
    return "-" if value is None else (value if len(value) <= n else value[:n] + "…")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exp:.1f} {'BKMG'[exp]}iB"


def _hexdump(data: bytes) -> list[tuple[str, str, str]]:
    rows = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append((f"{off:08x}", hexes, text))
    return rows


_TEMPLATES = ("artifact.html", "error.html", "events.html", "run.html", "runs.html",
              "verify.html")


@functools.cache
def _environment() -> jinja2.Environment:
    """One environment per process, every template compiled up front (about 0.1 s, paid at
    startup rather than by the first visitor)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, auto_reload=False)
    env.filters.update(iso=_iso, short=_short, size=_size, clock=_clock,
                       num=lambda n: f"{n:,}")
    for name in _TEMPLATES:
        env.get_template(name)
    return env


@attrs.frozen(kw_only=True)
class _Payload:
    """A fact payload as a timeline row shows it."""

    size: int | None = None
    text: str | None = None
    is_json: bool = False
    error: str | None = None


@attrs.frozen(kw_only=True)
class _Diff:
    changes: list[Change]
    base_known: bool
    snapshot: str | None


class _Pages:
    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector
        self.env = _environment()

    def render(self, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("label", self.inspector.label)
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=http_status)

    def error(self, http_status: int, title: str, message: str) -> HTMLResponse:
        return self.render("error.html", http_status, title=title, message=message)

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        op = q.get("op") or None
        prefix = (q.get("q") or "").strip().lower() or None
        try:
            offset = max(int(q.get("offset", "0")), 0)
        except ValueError:
            offset = 0
        page = await self.inspector.runs.page(status=status, op=op, prefix=prefix,
                                              offset=offset)
        keep = {k: v for k, v in (("status", status), ("op", op), ("q", prefix)) if v}

        def link(new_offset: int) -> str:
            return "/?" + urlencode({**keep, "offset": new_offset})

        prev_link = link(max(page.offset - RUNS_PAGE_SIZE, 0)) if page.offset > 0 else None
        next_link = link(page.offset + RUNS_PAGE_SIZE) \
            if page.offset + RUNS_PAGE_SIZE < page.total else None
        return self.render("runs.html", page=page, status=status, op=op, prefix=prefix or "",
                           statuses=_STATUSES, prev_link=prev_link, next_link=next_link)

    async def _payloads(self, attempts: list[Attempt]) -> dict[str, _Payload]:
        wanted: list[str] = []
        for attempt in attempts:
            for fact in [*attempt.reused, *attempt.facts[:ITEMS_PER_ATTEMPT]]:
                if fact.payload_id not in wanted:
                    wanted.append(fact.payload_id)
        wanted = wanted[:_PAYLOADS_PER_PAGE]
        # Issued together, the reads run back to back on the store's thread.
        views = await asyncio.gather(*(self._payload(pid) for pid in wanted))
        return dict(zip(wanted, views, strict=True))

    async def _payload(self, payload_id: str) -> _Payload:
        try:
            data = await self.inspector.artifact(ArtifactId(payload_id))
        except (MfmError, ValueError) as exc:
            return _Payload(error=str(exc))
        view = decode_artifact(payload_id, data)
        if view.is_json:
            text = json.dumps(view.json_value, ensure_ascii=False, separators=(",", ":"))
            if len(text) > _PREVIEW_CHARS:
                text = text[:_PREVIEW_CHARS - 1] + "…"
            return _Payload(size=view.size, text=text, is_json=True)
        return _Payload(size=view.size, text=view.head[:32].hex(" ")
                        + (" …" if view.size > 32 else ""))

    async def _diffs(self, attempts: list[Attempt]) -> dict[int, _Diff]:
        done = [a for a in attempts if a.outcome == "completed" and a.snapshot_id is not None]
        ids = list(dict.fromkeys(i for a in done for i in (a.base_snapshot_id, a.snapshot_id)
                                 if i is not None))
        values = dict(zip(ids, await asyncio.gather(
            *(self.inspector.json_artifact(i) for i in ids)), strict=True))
        out: dict[int, _Diff] = {}
        for attempt in done:
            new = values.get(attempt.snapshot_id or "")
            old = values.get(attempt.base_snapshot_id or "")
            known = old is not None and new is not None
            out[attempt.first_seq] = _Diff(
                changes=json_diff(old, new) if known else [], base_known=known,
                snapshot=None if new is None else pretty_json(new))
        return out

    async def run(self, request: Request) -> Response:
        try:
            run_id = RunId.parse(request.path_params["run_id"])
        except ValueError:
            return self.error(400, "Not a run id", f"{request.path_params['run_id']!r} is not "
                              "a run id; search by prefix on the runs page.")
        try:
            page = max(int(request.query_params.get("page", "0")), 0)
        except ValueError:
            page = 0
        view = await self.inspector.run_view(run_id, (page + 1) * ATTEMPTS_PER_PAGE)
        if view is None:
            return self.error(404, "No such run", f"This file has no run {run_id}.")
        model = view.model
        pages = max(math.ceil(len(model.attempts) / ATTEMPTS_PER_PAGE), 1)
        page = min(page, pages - 1)
        shown = model.attempts[page * ATTEMPTS_PER_PAGE:(page + 1) * ATTEMPTS_PER_PAGE]
        more = len(model.attempts) > (page + 1) * ATTEMPTS_PER_PAGE or not view.complete
        manifest, initial, policy = await asyncio.gather(
            self.inspector.json_artifact(model.manifest_id),
            self.inspector.json_artifact(model.initial_snapshot_id),
            self.inspector.policy(model.manifest_id))
        backoffs = {a.first_seq: describe_backoff(policy, a.previous_attempt)
                    for a in shown if a.retry_of == "failed" and a.previous_attempt is not None}
        payloads, diffs = await asyncio.gather(self._payloads(shown), self._diffs(shown))
        return self.render(
            "run.html", model=model, view=view,
            summary=self.inspector.runs.summary(str(run_id)),
            attempts=shown, page=page, pages=pages, more=more, items_cap=ITEMS_PER_ATTEMPT,
            payloads=payloads, diffs=diffs, backoffs=backoffs,
            manifest=None if manifest is None else pretty_json(manifest),
            policy=None if policy is None else describe_policy(policy),
            initial=None if initial is None else pretty_json(initial),
            live=view.status == "running")

    async def run_head(self, request: Request) -> Response:
        try:
            run_id = RunId.parse(request.path_params["run_id"])
        except ValueError:
            return JSONResponse({"error": "not a run id"}, status_code=400)
        return JSONResponse({"head": await self.inspector.store.head_seq(run_id)})

    async def events(self, request: Request) -> Response:
        try:
            run_id = RunId.parse(request.path_params["run_id"])
        except ValueError:
            return self.error(400, "Not a run id", "That is not a run id.")
        try:
            start = max(int(request.query_params.get("from", "1")), 1)
        except ValueError:
            start = 1
        head = await self.inspector.store.head_seq(run_id)
        if head == 0:
            return self.error(404, "No such run", f"This file has no run {run_id}.")
        envelopes = await self.inspector.store.read_range(run_id, start,
                                                          start + EVENTS_PER_PAGE - 1)
        rows = [(env.seq, env.ts_millis, _kind(env.event.to_json()),
                 json.dumps(env.event.to_json(), ensure_ascii=False, separators=(",", ":")))
                for env in envelopes]
        prev_from = max(start - EVENTS_PER_PAGE, 1) if start > 1 else None
        next_from = start + EVENTS_PER_PAGE if start + EVENTS_PER_PAGE <= head else None
        return self.render("events.html", run_id=str(run_id), rows=rows, head=head,
                           start=start, prev_from=prev_from, next_from=next_from)

    def _artifact_id(self, request: Request) -> ArtifactId | None:
        try:
            return ArtifactId(request.path_params["artifact_id"].lower())
        except ValueError:
            return None

    async def artifact(self, request: Request) -> Response:
        aid = self._artifact_id(request)
        if aid is None:
            return self.error(400, "Not an artifact id",
                              "An artifact id is 64 lowercase hex characters (a SHA-256).")
        try:
            data = await self.inspector.artifact(aid)
        except MfmError as exc:
            status = 404 if exc.info.code == CODE_NOT_FOUND else 500
            return self.error(status, "Artifact unreadable" if status == 500 else
                              "No such artifact", f"{exc} [{exc.info.code}]")
        view = decode_artifact(aid, data)
        return self.render("artifact.html", view=view,
                           pretty=pretty_json(view.json_value) if view.is_json else None,
                           hexdump=_hexdump(view.head))

    async def download(self, request: Request) -> Response:
        aid = self._artifact_id(request)
        if aid is None:
            return PlainTextResponse("not an artifact id\n", status_code=400)
        try:
            data = await self.inspector.artifact(aid)
        except MfmError as exc:
            status = 404 if exc.info.code == CODE_NOT_FOUND else 500
            return PlainTextResponse(f"{exc} [{exc.info.code}]\n", status_code=status)
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="{aid}.bin"'})

    async def verify(self, request: Request) -> Response:
        job = self.inspector.verify
        if job.state in ("idle", "unsupported") or (
                request.query_params.get("again") and job.state != "running"):
            job.start()
        return self.render("verify.html", job=job, now=time.time())

    async def verify_progress(self, request: Request) -> Response:
        return JSONResponse(self.inspector.verify.to_json())


def _kind(obj: Any) -> str:
    """``RunStarted``, ..., or ``Domain: name`` from an event's interchange form."""
    if "Kernel" in obj:
        return str(next(iter(obj["Kernel"])))
    return f"Domain: {obj['Domain']['name']}"


class InspectorApp:
    """The ASGI application returned by :func:`create_app`; ``inspector`` holds its caches."""

    def __init__(self, app: Starlette, inspector: Inspector,
                 allowed_hosts: Collection[str]) -> None:
        self.inspector = inspector
        self._guard = _Guard(app, allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guard(scope, receive, send)

    async def aclose(self) -> None:
        """Stop background work (runs list loading, verify); the store stays open."""
        await self.inspector.close()


def create_app(store: Store, *, allowed_hosts: Collection[str], label: str = "store",
               runs_max_age: float = 5.0) -> InspectorApp:
    """The inspector over ``store`` (left open: the caller owns and closes it).

    ``allowed_hosts`` are the exact ``Host`` header values served (e.g. ``127.0.0.1:8765``);
    any other is answered 403. ``label`` names the store in page headers. The runs list is
    read again when older than ``runs_max_age`` seconds and the file changed. Under a server, the
    ASGI lifespan starts loading the runs list at startup and stops background work at
    shutdown; without one, call :meth:`InspectorApp.aclose` when done.
    """
    inspector = Inspector(store, label, runs_max_age)
    pages = _Pages(inspector)

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.error(404, "Not found", "There is no page here.")

    async def store_error(request: Request, exc: Exception) -> Response:
        info = getattr(exc, "info", None)
        return pages.error(500, "The store reported an error",
                           f"{exc} [{getattr(info, 'code', 'error')}]")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        inspector.runs.prefetch()
        try:
            yield
        finally:
            await inspector.close()

    app = Starlette(
        routes=[
            Route("/", pages.runs),
            Route("/runs/{run_id}", pages.run),
            Route("/runs/{run_id}/events", pages.events),
            Route("/runs/{run_id}/head", pages.run_head),
            Route("/artifacts/{artifact_id}", pages.artifact),
            Route("/artifacts/{artifact_id}/download", pages.download),
            Route("/verify", pages.verify),
            Route("/verify/progress", pages.verify_progress),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
        exception_handlers={404: not_found, MfmError: store_error},
        lifespan=lifespan)
    return InspectorApp(app, inspector, allowed_hosts)
