"""One exception tree for everything correlate reports to a user.

Library code raises these; only ``cli.py`` turns them into ``Error: …`` and an
exit code. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class CorrelateError(Exception):
    """Base of every error correlate expects and explains."""


class StoreError(CorrelateError):
    """The run store cannot be opened or used as asked."""


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""

    def __init__(self, path: Path | str, detail: str = "") -> None:
        self.path = Path(path)
        message = (
            f"store is locked: {self.path} is open in another process "
            "(an ingest or a notebook still running?). Close it, or pass --db to use another file"
        )
        if detail:
            message += f" [{detail}]"
        super().__init__(message)


class SchemaVersionError(StoreError):
    """The store file was written by another version of correlate."""


class RunNotFoundError(CorrelateError):
    """A run name that the store does not hold."""


class InputError(CorrelateError):
    """A file or directory that cannot be read as asked.

    ``path`` and ``line`` (1-based, when known) say where.
    """

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class DatabaseConnectionError(CorrelateError):
    """A database correlate was asked to connect to (e.g. to capture plans) could not be reached.

    ``url`` is the URL with its password replaced; the message never holds the password.
    """

    def __init__(self, message: str, url: str) -> None:
        self.url = url
        super().__init__(message)


class QueryError(CorrelateError):
    """Ad-hoc SQL that the store rejected."""


class SettingsError(CorrelateError):
    """A detector setting that does not exist, or a value it cannot take.

    ``key`` is the dotted key (``n_plus_one.min_calls``) and ``valid`` the keys
    that would have been accepted.
    """

    def __init__(self, message: str, key: str | None = None, valid: tuple[str, ...] = ()) -> None:
        self.key = key
        self.valid = valid
        super().__init__(message)


class ConfigError(SettingsError):
    """The project configuration file cannot be read: not a file, not UTF-8, not TOML.

    ``path`` and ``line`` (1-based, when known) say where.
    """

    def __init__(self, message: str, path: Path | str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class SandboxError(QueryError):
    """A statement ``correlate sql`` refuses: anything beyond reading the store."""
