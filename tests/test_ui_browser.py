"""The web inspector in a real headless Chromium, over the demo's file and a run full of markup.

One inspector process serves one folder for the whole module; the last test stops it with
Ctrl-C and checks that the folder and the database bytes are exactly as before browsing.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import (
    MARKUP_IMG,
    MARKUP_SCRIPT,
    Inspector,
    chromium,
    inspector,
    live_writer,
    write_markup_run,
)

from mfm_store import SqliteStore


def _listing(folder: Path) -> dict[str, str]:
    """Every file in ``folder``: name -> SHA-256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


class Session:
    def __init__(self, folder: Path, db: Path, demo_run: str, markup_run: str,
                 before: dict[str, str], server: Inspector, browser: Any) -> None:
        self.folder, self.db = folder, db
        self.demo_run, self.markup_run = demo_run, markup_run
        self.before, self.server, self.browser = before, server, browser
        self.page = browser.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda msg: self.console.append(msg.text))
        self.page.set_default_timeout(10_000)

    def goto(self, path: str) -> Any:
        self.page.goto(self.server.url.rstrip("/") + path)
        return self.page


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("ui-browse")
    db = folder / "demo.db"
    demo = subprocess.run([sys.executable, "-m", "mfm_store", "demo", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr

    async def prepare() -> tuple[str, str]:
        async with SqliteStore.open(db) as store:
            (demo_run,) = [str(r.run_id) for r in await store.list_runs()]
            return demo_run, await write_markup_run(store)

    demo_run, markup_run = asyncio.run(prepare())
    (folder / "demo-copy.db").unlink()
    before = _listing(folder)
    assert sorted(before) == ["demo.db"]
    with inspector(db) as server, \
            chromium(tmp_path_factory.mktemp("profile") / "chromium") as browser:
        yield Session(folder, db, demo_run, markup_run, before, server, browser)


def test_demo_run_crash_resume_facts_and_diff(session: Session) -> None:
    page = session.goto("/")
    page.get_by_role("link", name=session.demo_run).click()
    page.wait_for_selector("h1.run-title")
    assert session.demo_run in page.inner_text("h1")

    crashed = page.locator("li.attempt.crashed")
    assert crashed.count() == 1
    text = crashed.inner_text()
    assert "demo.order.submit" in text and "attempt 0" in text and "Crashed" in text
    assert "broker:submit|" in text  # the answer recorded before the crash

    retry = page.locator("li.attempt", has_text="attempt 1")
    assert "Resumed after a crash" in retry.inner_text()
    reused = retry.locator("tr.fact.reused")
    assert reused.count() == 1
    assert "reused from the file" in reused.inner_text()
    assert "broker:submit|" in reused.inner_text()

    # The snapshot diff of the resumed attempt: the ticket came from the reused answer.
    diff = retry.locator("details.diff")
    assert not diff.locator("table.diff").is_visible()
    diff.locator("> summary").click()
    table = diff.locator("table.diff")
    assert table.is_visible()
    assert "ticket" in table.inner_text() and "T-" in table.inner_text()

    # Open the reused fact's payload: pretty JSON on the artifact page.
    reused.locator("a.payload").click()
    page.wait_for_selector("pre.json.artifact")
    payload = json.loads(page.inner_text("pre.json.artifact"))
    answer = json.loads(payload["body"]["text"])  # the demo's broker answers over HTTP
    assert answer["accepted"] is True and answer["ticket"].startswith("T-")


def test_download_gives_the_exact_bytes(session: Session) -> None:
    page = session.goto(f"/runs/{session.demo_run}")
    link = page.locator("li.attempt", has_text="demo.order.stamp").locator("a.payload.bytes")
    link.click()  # the random bytes: shown as hex, offered for download
    page.wait_for_selector("pre.hex")
    artifact_id = page.inner_text("dl.meta code.id")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == f"{artifact_id}.bin"
    data = Path(download.path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == artifact_id
    assert data.hex(" ")[:47] in page.inner_text("pre.hex")


def test_runs_page_filters_and_searches(session: Session) -> None:
    page = session.goto("/")
    assert page.locator("table.runs tbody tr").count() == 2
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=failed**")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 1 and session.markup_run in rows.inner_text()

    page = session.goto("/")
    page.fill("input[name=q]", session.demo_run[:6])
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=**")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 1 and session.demo_run in rows.inner_text()


def test_stored_markup_is_shown_as_text_and_never_runs(session: Session) -> None:
    page = session.goto(f"/runs/{session.markup_run}")
    for details in page.locator("details").all():
        details.locator("summary").first.click()
    text = page.inner_text("main")
    assert MARKUP_IMG in text and MARKUP_SCRIPT in text
    assert "failed on " + MARKUP_IMG + MARKUP_SCRIPT in text  # the error message
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main img").count() == 0
    assert page.locator("script").count() == 1  # the page's own /static/ui.js
    # Nothing was even attempted (a blocked attempt would log a CSP violation).
    assert not [m for m in session.console if "Content Security Policy" in m], session.console

    page.locator("tr.fact a.payload").first.click()
    page.wait_for_selector("pre.json.artifact")
    assert MARKUP_SCRIPT in page.inner_text("pre.json.artifact")
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_verify_page_reports_ok(session: Session) -> None:
    page = session.goto("/")
    page.get_by_role("link", name="Verify").click()
    verdict = page.locator("#verdict")
    verdict.wait_for()
    assert verdict.inner_text() == "OK: no problem found."
    assert "2 runs" in page.inner_text("main")


def test_foreign_host_is_refused(session: Session) -> None:
    def get(host: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", session.server.port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    status, body = get(f"attacker.example:{session.server.port}")
    assert status == 403 and "Host header not allowed" in body
    assert get(f"127.0.0.1:{session.server.port + 1}")[0] == 403
    assert get(f"127.0.0.1:{session.server.port}")[0] == 200
    assert get(f"localhost:{session.server.port}")[0] == 200


def test_an_open_run_page_reloads_when_events_land(session: Session,
                                                   tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with live_writer(db) as (writer, run), inspector(db) as server:
        page = session.browser.new_page()
        page.goto(f"{server.url}runs/{run}")
        assert page.locator("li.attempt.open").count() == 1
        assert "reloads when new events land" in page.inner_text("#live")
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "done"
        # The page's script sees the head move and reloads: no action from the test.
        page.locator("li.attempt.crashed").wait_for(timeout=15_000)
        assert page.locator("h1 .badge").inner_text() == "completed"
        assert "reused from the file" in page.inner_text("li.attempt.completed")
        page.close()
        writer.stdin.close()


def test_ctrl_c_stops_and_the_files_are_unchanged(session: Session) -> None:
    code, out = session.server.stop()
    assert code == 0, out
    assert "stopped" in out and "Traceback" not in out
    assert _listing(session.folder) == session.before


def test_readme_screenshot_script_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "shot" / "ui.png"
    done = subprocess.run([sys.executable, "-m", "benchmarks.ui_screenshot", "--out", str(out),
                           "--width", "900"], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 900  # the width asked for
    assert int.from_bytes(head[20:24], "big") > 1000  # the whole run page, not a viewport
