"""Serving the inspector: open a store read-only, serve it on a loopback address.

Nothing here imports the ``ui`` extra's libraries at import time, so the command line works
(and says what to install) without them. The ``mfm-store ui`` command is wired in the CLI.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from .._open import open_store, shown_target
from ..errors import (
    CODE_NOT_A_DATABASE,
    CODE_STORE_NOT_FOUND,
    CODE_UI_EXTRA_MISSING,
    MfmError,
    StorageError,
)
from ..stores import Store

__all__ = ["open_read_only", "serve"]

_MISSING_EXTRA = ("the web inspector needs the 'ui' extra: "
                  "python3 -m pip install 'mfm_store[ui]'")


@asynccontextmanager
async def open_read_only(target: str | os.PathLike[str]) -> AsyncIterator[tuple[Store, str]]:
    """The store at ``target`` opened read-only (``open_store``), and a label for pages.

    ``target`` is the path of an existing SQLite file (never created), a PostgreSQL URL
    (its password is left out of the label) or ``memory:`` (an empty store).
    """
    text = os.fspath(target)
    if text == "memory:":
        async with open_store("memory:") as memory:
            yield memory, text
        return
    if text.startswith(("postgresql://", "postgres://")):
        async with open_store(text, read_only=True) as store:
            yield store, _without_password(text)
        return
    path = Path(text)
    if not path.exists():
        raise StorageError(f"{path}: no such file", code=CODE_STORE_NOT_FOUND)
    if path.is_dir():
        raise StorageError(f"{path}: is a directory, not a database file",
                           code=CODE_NOT_A_DATABASE)
    async with open_store(path, read_only=True) as store:
        yield store, str(path)


def _without_password(url: str) -> str:
    # Both spellings: user:password@ and ?password=.
    return shown_target(url)


async def serve(target: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                open_browser: bool = False, out: TextIO | None = None) -> None:
    """Serve the inspector over the store at ``target`` until Ctrl-C (SIGINT) or SIGTERM.

    Opens the store read-only, listens on ``host`` (a loopback address only) and ``port``
    (0: a free port), prints the address once it accepts connections, optionally opens the
    user's browser, and closes the store on the way out. Raises ``StorageError`` (codes
    ``store_not_found``, ``not_an_mfm_store``) for a missing file or a folder, ``MfmError``
    (``ui_extra_missing``) without the ``ui`` extra, ``ValueError`` for a host that is not
    loopback.
    """
    try:
        from ._server import serve_store
    except ImportError as exc:
        raise MfmError(f"{_MISSING_EXTRA} ({exc})", code=CODE_UI_EXTRA_MISSING) from None
    async with open_read_only(target) as (store, label):
        await serve_store(store, label=label, host=host, port=port,
                          open_browser=open_browser, out=out)
