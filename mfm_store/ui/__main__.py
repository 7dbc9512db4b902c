"""``python -m mfm_store.ui --db PATH [--port N] [--open]``: the inspector on its own."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..cli._common import CliError, add_db_option
from ..errors import MfmError
from ._command import EXAMPLE, HELP, add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mfm_store.ui", description=HELP[0].upper() + HELP[1:] + ".",
        epilog="example:\n  " + EXAMPLE.replace("mfm-store ui", "python -m mfm_store.ui")
        .replace("\n", "\n  "), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except CliError as exc:
        sys.stderr.write(f"mfm-store ui: error: {exc} [{exc.code}]\n")
        return exc.exit_code
    except MfmError as exc:
        sys.stderr.write(f"mfm-store ui: error: {exc} [{exc.info.code}]\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
