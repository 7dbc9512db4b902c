"""``python -m mfm_store.ui --db PATH [--port N] [--open]``: the same as ``mfm-store ui``."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
