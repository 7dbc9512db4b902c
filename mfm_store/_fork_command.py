"""``python -m mfm_store._fork_command ...``: the ``mfm-store`` command line, kept under this
name for scripts that use it. The command itself lives in ``mfm_store/cli/_fork.py``."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
