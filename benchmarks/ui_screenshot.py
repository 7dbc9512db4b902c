"""Regenerate the README's screenshot of the web inspector: ``python -m benchmarks.ui_screenshot``.

Records the demo into a temporary folder (``mfm-store demo --db``), serves it with
``python -m mfm_store.ui``, opens the run page in headless Chromium (``/usr/bin/chromium``
driven by Playwright, as in the browser tests), unfolds the context diff of the resumed
attempt and writes a full-page PNG (default ``docs/ui.png``). Needs the ``dev`` extra and
Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers.browser import chromium, inspector

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "ui.png"


def screenshot(out: Path, *, width: int = 1100) -> Path:
    """Write the run page of a fresh demo file to ``out`` (PNG); returns ``out``."""
    with tempfile.TemporaryDirectory(prefix="ui-shot-") as tmp:
        db = Path(tmp) / "demo.db"
        subprocess.run([sys.executable, "-m", "mfm_store", "demo", "--db", str(db)],
                       check=True, capture_output=True, timeout=120)
        with inspector(db) as server, chromium(Path(tmp) / "profile", width=width,
                                               height=800) as browser:
            page = browser.new_page()
            page.goto(server.url)
            page.locator("table.runs a").first.click()
            page.wait_for_selector("h1.run-title")
            retry = page.locator("li.attempt", has_text="attempt 1")
            retry.locator("details.diff > summary").click()
            retry.locator("table.diff").wait_for()
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ui_screenshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    p.add_argument("--width", type=int, default=1100, help="viewport width in pixels")
    args = p.parse_args(argv)
    print(screenshot(args.out, width=args.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
