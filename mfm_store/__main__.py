"""``python -m mfm_store``: the ``mfm-store`` command line."""

from .cli import main

raise SystemExit(main())
