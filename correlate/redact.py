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

A password may hold an ``@`` its writer did not percent-encode
(``postgresql://app:s3@cret@db/shop``). SQLAlchemy and libpq end the user part at
the first ``@``, which would show ``cret@db`` as the host; here the user part ends
at the last ``@``, so the whole password is hidden (:func:`unescaped_at` tells
such a URL, which capture and watch refuse to connect with).

>>> redact_url("postgresql://app:s3@cret@db/shop")
'postgresql://app:***@db/shop'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["MASK", "is_secret_parameter", "redact_url", "scrub", "unescaped_at", "url_secrets"]

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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _as_text(url: str | URL | Any) -> str:
    if isinstance(url, str):
        return url
    render = getattr(url, "render_as_string", None)
    return str(render(hide_password=False)) if render else str(url)


def _at_repaired(url: str | URL | Any) -> tuple[str, str] | None:
    """(the URL with its password percent-encoded, the password) when the password holds
    an unescaped ``@``, taking the user part to end at the last ``@``; else None."""
    text = _as_text(url)
    scheme = _SCHEME.match(text)
    if not scheme:
        return None
    rest = text[scheme.end() :]
    user, colon, password = rest[: max(rest.rfind("@"), 0)].partition(":")
    if not colon or "@" not in password:
        return None
    host = rest[rest.rfind("@") + 1 :]
    return f"{text[: scheme.end()]}{user}:{quote(password, safe='')}@{host}", password


def unescaped_at(url: str | URL | Any) -> bool:
    """True when the password in ``url`` holds an ``@`` that is not percent-encoded.

    Drivers would take what follows that ``@`` for the host and quote it in their errors,
    so such a URL is refused rather than connected with; the fix is to write ``%40``.

    >>> unescaped_at("postgresql://app:s3@cret@db/shop"), unescaped_at("postgresql://app:s3%40cret@db/shop")
    (True, False)
    """
    return _at_repaired(url) is not None


#: What to say of a URL :func:`unescaped_at` flags.
UNESCAPED_AT = (
    "the password in the URL holds an '@' that is not percent-encoded, so the host cannot "
    "be told from the password: write each '@' of the password as %40, or pass the "
    "password in the environment (PGPASSWORD, MYSQL_PWD)"
)


def _parse(url: str | URL) -> URL | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    repaired = _at_repaired(url)
    try:
        return make_url(repaired[0] if repaired else url)
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
    repaired = _at_repaired(url)
    if repaired:
        # A driver given the URL as written shows the password's pieces apart: "cret@db".
        found.update(p for p in re.split(r"[@:/?#]", repaired[1]) if len(p) >= 3)
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
