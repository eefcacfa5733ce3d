"""Errors the demo reports to a user."""

from __future__ import annotations

from correlate.errors import CorrelateError


class DemoError(CorrelateError):
    """The demo could not be set up or run as asked."""
