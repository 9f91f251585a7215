"""``python3 -m uv run python bench/run.py --help``: dbnotify's benchmark, one command."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a script, Python put bench/ first on the path: put the checkout's root there
    # instead, so that ``bench`` is a package and its modules shadow nothing
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.cli import main

    sys.exit(main())
