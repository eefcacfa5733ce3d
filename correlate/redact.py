"""Secrets out of database URLs: the one place that decides what of a URL may be shown.

A database URL can carry a secret in two places: the password of its user part
(``postgresql://app:s3cret@db/shop``) and its query string, where libpq and the
drivers accept ``password``, ``sslpassword``, ``passfile``, ``sslkey`` and the
like (``postgresql://app@db/shop?password=s3cret``). Every URL correlate prints,
logs, stores in the run store or in ``run.json`` goes through :func:`redact_url`,
and every message a driver raises while connecting goes through :func:`scrub`
with the URL's :func:`url_secrets`, because drivers are free to quote their
connection string back.

>>> redact_url("postgresql+psycopg://app:s3cret@db:5432/shop?sslmode=require&sslpassword=k3y")
'postgresql+psycopg://app:***@db:5432/shop?sslmode=require&sslpassword=***'
>>> redact_url("not a url :: s3cret")
'<unparseable database URL>'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["MASK", "is_secret_parameter", "redact_url", "scrub", "url_secrets"]

#: What a hidden value is shown as.
MASK = "***"
#: Shown instead of a URL that cannot be parsed: the secret may be anywhere in it.
UNPARSEABLE = "<unparseable database URL>"

# Query parameters whose value is a secret or the path to one. Matched anywhere in the
# lower-cased name, so ``sslpassword``, ``api_key``, ``auth_token`` and ``passfile`` are
# all hidden; hiding a harmless parameter costs nothing, showing a secret one does.
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|credential|auth|signature|cert")


def is_secret_parameter(name: str) -> bool:
    """True when a URL query parameter called ``name`` may hold a secret.

    >>> [is_secret_parameter(n) for n in ("password", "sslkey", "passfile", "sslmode", "host")]
    [True, True, True, False, False]
    """
    return bool(_SECRET_NAME.search(name.lower()))


def _parse(url: str | URL) -> URL | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return None


def redact_url(url: str | URL | Any) -> str:
    """``url`` as text with the password and every secret query parameter shown as ``***``.

    Accepts a string or a SQLAlchemy ``URL``. A string that does not parse as a URL is
    replaced whole, since the secret may be anywhere in it.
    """
    parsed = _parse(url)
    if parsed is None:
        return UNPARSEABLE
    # render_as_string masks the password of the user part; the query is rendered here,
    # because SQLAlchemy would percent-encode the mask.
    base = parsed.set(query={}).render_as_string(hide_password=True)
    if not parsed.query:
        return base
    parts: list[str] = []
    for name in sorted(parsed.query):
        value = parsed.query[name]
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            shown = MASK if is_secret_parameter(name) else quote_plus(str(item))
            parts.append(f"{quote_plus(name)}={shown}")
    return f"{base}?{'&'.join(parts)}"


def url_secrets(url: str | URL | Any) -> list[str]:
    """The secret values in ``url`` (password, secret query parameters), as written and
    percent-encoded, longest first: what :func:`scrub` must remove from messages."""
    parsed = _parse(url)
    if parsed is None:
        return [str(url)] if str(url) else []
    found: set[str] = set()
    if parsed.password:
        found.add(str(parsed.password))
    for name, value in parsed.query.items():
        if is_secret_parameter(name):
            found.update(str(v) for v in (value if isinstance(value, tuple) else (value,)))
    encoded = {quote(s, safe="") for s in found} | {quote_plus(s) for s in found}
    return sorted((s for s in found | encoded if s), key=len, reverse=True)


def scrub(message: str, secrets: list[str] | tuple[str, ...] | str | None) -> str:
    """``message`` with every occurrence of each secret replaced by ``***``.

    >>> scrub("password authentication failed: 'hunter2'", ["hunter2"])
    "password authentication failed: '***'"
    """
    if not secrets:
        return message
    if isinstance(secrets, str):
        secrets = [secrets]
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, MASK)
    return message
