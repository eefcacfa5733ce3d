"""Running a span producer (a script under tests/helpers) in a process of its own.

Instrumentors patch their libraries once per process, and the semantic-convention mode
(``OTEL_SEMCONV_STABILITY_OPT_IN``) is read once per process, so each run is a child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def produce(script: Path, *args: str | Path, semconv: str = "", timeout: float = 180) -> None:
    """Run ``script`` with ``args``; fail the test with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, str(script), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": semconv},
    )
    assert done.returncode == 0, done.stderr
