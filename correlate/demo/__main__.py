"""``python -m correlate.demo``: the same as ``correlate demo``."""

from __future__ import annotations

import sys

from correlate.cli import cli

if __name__ == "__main__":
    cli(["demo", *sys.argv[1:]], prog_name="python -m correlate.demo")
