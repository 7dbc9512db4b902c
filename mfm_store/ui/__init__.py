"""``mfm-store ui``: a local, read-only web inspector for a store (the ``ui`` extra).

:func:`serve` opens a store read-only and serves pages on a loopback address until Ctrl-C;
:func:`create_app` builds the ASGI application over an open store. The ``mfm-store ui`` command
(``mfm_store/cli/_ui.py``) calls :func:`serve`. Importing this package does not
import the extra's libraries (Starlette, uvicorn, Jinja2); :func:`create_app` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._serve import serve

if TYPE_CHECKING:
    from ._app import InspectorApp, create_app

__all__ = ["InspectorApp", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("InspectorApp", "create_app"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
