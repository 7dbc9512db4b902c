"""Driving Debian's headless Chromium with Playwright, and running the inspector to browse.

Playwright's own browser download is never used: the browser is ``/usr/bin/chromium`` (or
``$MFM_CHROMIUM``), started with a fresh profile folder each time. ``.ci/run`` installs it and
sets ``MFM_STORE_REQUIRE_BROWSER=1``, which makes a missing browser a failure; elsewhere the
browser tests skip with that one reason (as the PostgreSQL tests do without server binaries).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("MFM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions",
]
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright ``BrowserContext`` of a headless Chromium using ``profile`` (created
    fresh) as its user data folder; downloads are accepted."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (or set MFM_CHROMIUM)"
        if os.environ.get("MFM_STORE_REQUIRE_BROWSER") == "1":
            raise RuntimeError(reason)
        import pytest

        pytest.skip(reason)
    profile.mkdir(parents=True, exist_ok=False)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True, viewport={"width": width, "height": height},
            chromium_sandbox=False)
        try:
            yield context
        finally:
            context.close()


class Inspector:
    """``python -m mfm_store.ui`` in a child process, on a free port."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.port = int(url.rstrip("/").rsplit(":", 1)[1])

    def stop(self) -> tuple[int, str]:
        """Ctrl-C (SIGINT) and wait: the exit code and what it printed after the address."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=20)
        return self.proc.returncode, out


@contextmanager
def inspector(db: Path | str, *extra: str, env: dict[str, str] | None = None
              ) -> Iterator[Inspector]:
    """Start the inspector over ``db``; yields once it prints its address (it is listening
    then), stops it with SIGINT on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfm_store.ui", "--db", str(db), *extra], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if " at http://" not in line:
            proc.kill()
            rest, _ = proc.communicate(timeout=20)
            raise RuntimeError(f"the inspector did not start: {line}{rest}")
        url = line.split(" at ", 1)[1].split()[0]
        server = Inspector(proc, url)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


MARKUP_IMG = '<img src=x onerror="window.__pwned=1">'
MARKUP_SCRIPT = "<script>window.__pwned=2</script>"


async def write_markup_run(store: Any) -> str:
    """A failed run whose stored strings are markup: fact key and payload, a domain event's
    name and payload, context values and the error message. Returns its run id."""
    from mfm_store import ArtifactKind, DomainEvent, EventEnvelope, RunId
    from mfm_store.errors import ErrorCategory, ErrorInfo
    from mfm_store.events import (
        RunCompleted,
        RunStarted,
        RunStatus,
        StateCompleted,
        StateEntered,
        StateError,
        StateFailed,
    )

    run = RunId.new()
    manifest = await store.put(ArtifactKind.MANIFEST, b'{"op_id":"markup","note":"'
                               + MARKUP_SCRIPT.encode() + b'"}')
    before = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b'{"n":1}')
    after = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, json_bytes(
        {"n": 1, "html": MARKUP_IMG, "script": MARKUP_SCRIPT}))
    events: list[Any] = [
        RunStarted("markup", manifest, before),
        StateEntered("markup.main.first", 0, before),
        DomainEvent(MARKUP_SCRIPT, {"html": MARKUP_IMG, MARKUP_SCRIPT: [MARKUP_IMG]}),
    ]
    head = await store.append(run, 0, [EventEnvelope(run, i + 1, None, e)
                                       for i, e in enumerate(events)])
    binding = await store.record_fact(run, "key " + MARKUP_IMG, json_bytes(
        {"answer": MARKUP_SCRIPT}))
    head = binding.seq
    info = ErrorInfo("markup_error", ErrorCategory.UNKNOWN, False,
                     "failed on " + MARKUP_IMG + MARKUP_SCRIPT)
    tail: list[Any] = [
        StateCompleted("markup.main.first", after),
        StateEntered("markup.main.second", 0, after),
        StateFailed("markup.main.second", StateError("markup.main.second", info), None),
        RunCompleted(RunStatus.FAILED, None),
    ]
    await store.append(run, head, [EventEnvelope(run, head + i + 1, None, e)
                                   for i, e in enumerate(tail)])
    return str(run)


def json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def live_writer_main(path: str) -> None:
    """A writer process for the live-page test: starts a run (one open attempt, one fact),
    prints its id, waits for a line on stdin, then resumes and finishes the run and prints
    ``done``; keeps the file open until stdin closes."""
    import asyncio

    async def main() -> None:
        from mfm_store import ArtifactKind, EventEnvelope, RunId
        from mfm_store.events import (
            RunCompleted,
            RunStarted,
            RunStatus,
            StateCompleted,
            StateEntered,
        )
        from mfm_store.sqlite import SqliteStore

        run = RunId.new()
        async with SqliteStore.open(path) as store:
            snap = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, b"{}")
            await store.append(run, 0, [EventEnvelope(run, 1, None, RunStarted("live", snap, snap)),
                                        EventEnvelope(run, 2, None,
                                                      StateEntered("live.main.a", 0, snap))])
            await store.record_fact(run, "answer", b'{"ok":true}')
            print(run, flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            await store.append(run, 3, [
                EventEnvelope(run, 4, None, StateEntered("live.main.a", 1, snap)),
                EventEnvelope(run, 5, None, StateCompleted("live.main.a", snap)),
                EventEnvelope(run, 6, None, RunCompleted(RunStatus.COMPLETED, snap))])
            print("done", flush=True)
            await asyncio.to_thread(sys.stdin.read)

    asyncio.run(main())


@contextmanager
def live_writer(path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run :func:`live_writer_main` in a child process; yields it and the run id."""
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); "
            f"from helpers.browser import live_writer_main; live_writer_main({str(path)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip()
    finally:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.read()
            proc.stdout.close()
        proc.wait(timeout=30)
