"""``python -m mfm_store._sync_command ...``: the ``mfm-store`` command line, kept under this
name for scripts that use it. The command itself lives in ``mfm_store/cli/_sync.py``."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
