"""``RUN_DIR/run.json``: what ran, when, against what, with which versions."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.redact import redact_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RUN_FORMAT = "correlate-run"
RUN_FORMAT_VERSION = 1

# Distributions whose versions decide what the files look like. Missing ones
# are left out rather than reported as null, so the mapping stays short.
PACKAGES = (
    "correlate",
    "sqlalchemy",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-sqlalchemy",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-instrumentation-wsgi",
    "opentelemetry-exporter-otlp-json-file",
    "flask",
    "waitress",
    "locust",
    "psycopg",
    "psycopg2",
    "pymysql",
)


def iso_utc(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def git_info(directory: Path) -> dict[str, Any] | None:
    """Commit and dirtiness of the checkout holding ``directory``, if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {
        "commit": commit.stdout.strip(),
        "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
    }


def database_info(engine: Engine) -> dict[str, Any]:
    from correlate.instrument.pool import pool_value

    pool: Any = engine.pool
    return {
        "url": redact_url(engine.url),
        "dialect": engine.dialect.name,
        "driver": engine.dialect.driver,
        "database": engine.url.database,
        "pool": {
            "class": type(pool).__name__,
            "size": pool_value(pool, "size"),
            "max_overflow": getattr(pool, "_max_overflow", None),
            "timeout_s": getattr(pool, "_timeout", None),
        },
    }


def base_run_info(service: str, started_unix_nano: int) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "service": service,
        "started_unix_nano": started_unix_nano,
        "started_at": iso_utc(started_unix_nano),
        "ended_unix_nano": None,
        "ended_at": None,
        "python": platform.python_version(),
        "platform": sys.platform,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "packages": package_versions(),
    }


def update_run_json(run_dir: Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``run_dir/run.json`` (top-level keys) and rewrite it.

    Written to a temporary file and renamed, so a reader never sees half a file.
    A file this writes always names its format, so the directory reads as a
    run directory even when no ``correlate.instrument`` process wrote run.json
    first (``correlate demo --instrument otel``).
    """
    path = run_dir / "run.json"
    data: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        data = {}
    data = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, **data}
    data.update(updates)
    tmp = path.with_name(f".run.json.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return data
