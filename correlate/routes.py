"""Route templates from concrete paths: ``/books/123/reviews`` -> ``/books/{id}/reviews``.

A span without ``http.route`` still says which path it served or called
(``url.path``, ``http.target``, ``http.url``, ``url.full``, Brave's
``http.path``). Grouping by that path makes one route per id; folding the
segments that look like ids gives the template a framework would have named.

A path segment is folded to ``{id}`` when it is

- all digits (``123``),
- a UUID (``3f2b…-…``),
- a hash: 16 or more hex digits, at least one a decimal digit (``5e8f…``),
- or holds a run of four or more digits (``SKU-1037``, ``c-2000``,
  ``T759351C``, ``2024-06-01``).

Short version-like segments (``v1``, ``oauth2``, ``sha256``) stay. Folding is
idempotent and keeps the number of segments.

A route a framework names without its leading slash (Django's instrumentation sets
``http.route`` to the URL pattern's route, ``orders/<int:pk>/``) is given one
(:func:`route_of`), so it reads as a path and is the same route as the path-based
template of a request that matched no pattern. Only a value that is clearly a path
gets the slash: two or more segments, the first not empty; no whitespace or
backslash; outside a parameter (``{id?}``, ``<slug:cat>``) none of a regular
expression's ``^$()?|[]+*`` (Django's ``re_path``) and no ``#``; no colon in the
first segment outside a parameter, and no ``://`` (``mailto:a/b`` and
``http://shop/a`` are not routes). A single word may be a name and stays as it is.

Where the span says who named the route, that decides instead. Django resolves a
request's path after its leading slash, so every route of
opentelemetry-instrumentation-django (scope :data:`DJANGO_SCOPE`) is relative to
the site's root: any non-empty one gets the slash, a single word (``health``) and a
``re_path`` pattern (``/^orders/(?P<pk>[0-9]+)/$``) too. Django's ``health`` is then
the same route as ``/health``, the folded path of a request that matched no pattern.

Each rule exists twice, as a Python function for callers and tests and as SQL for the
store, and ``tests/test_tags_routes.py`` checks that the two agree on generated paths.

>>> path_template("/books/123/reviews")
'/books/{id}/reviews'
>>> path_template(path_of("http://pricing:8080/prices/SKU-1196?currency=EUR"))
'/prices/{id}'
"""

from __future__ import annotations

import re

#: What a folded segment becomes.
PLACEHOLDER = "{id}"
#: The instrumentation scope of opentelemetry-instrumentation-django, whose routes are all
#: relative to the site's root.
DJANGO_SCOPE = "opentelemetry.instrumentation.django"

_DIGITS = "[0-9]+"
_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_HASH = "[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*"
_HASH_MIN = 16
_DIGIT_RUN = "[0-9]{4}"
# Scheme and authority of an absolute URL (RFC 3986 section 3).
_ORIGIN = "^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"

# Segments without a leading slash; the first never empty (see route_of). Outside a
# parameter token ({id?}, <int:pk>) a character is none of: ASCII whitespace and
# controls, a backslash, a regular expression's ^$()?|[]+*, #; the first segment has
# no colon (mailto:a/b). Braces are written \x7b and \x7d: SQL holding this pattern
# may yet pass through str.format, and RE2 (DuckDB, ClickHouse) reads them as Python
# does. ASCII only: ClickHouse matches bytes, Python characters.
_NOT_TEXT = r"\x00-\x20\x7f\\/\x7b\x7d<>"
_TOKEN = rf"\x7b[^{_NOT_TEXT}]*\x7d|<[^{_NOT_TEXT}]*>"
_SEGMENT_CHAR = rf"[^{_NOT_TEXT}^$()?|#\[\]+*]"
_FIRST_CHAR = rf"[^{_NOT_TEXT}^$()?|#\[\]+*:]"
_BARE_ROUTE = rf"(?:{_FIRST_CHAR}|{_TOKEN})+(?:/(?:{_SEGMENT_CHAR}|{_TOKEN})*)+"

_DIGITS_RE = re.compile(_DIGITS)
_UUID_RE = re.compile(_UUID)
_HASH_RE = re.compile(_HASH)
_DIGIT_RUN_RE = re.compile(_DIGIT_RUN)
_ORIGIN_RE = re.compile(_ORIGIN)
_QUERY_RE = re.compile("[?#]")
_BARE_ROUTE_RE = re.compile(_BARE_ROUTE)


def is_id_segment(segment: str) -> bool:
    """Whether one path segment looks like an id (see the module docstring)."""
    return bool(
        _DIGITS_RE.fullmatch(segment)
        or _UUID_RE.fullmatch(segment)
        or (len(segment) >= _HASH_MIN and _HASH_RE.fullmatch(segment))
        or _DIGIT_RUN_RE.search(segment)
    )


def path_template(path: str) -> str:
    """``path`` with every id-like segment replaced by ``{id}``.

    >>> path_template("/orders/3f2b8c1e-1b2a-4c3d-9e8f-0a1b2c3d4e5f/items/7")
    '/orders/{id}/items/{id}'
    >>> path_template("/api/v1/users")
    '/api/v1/users'
    """
    return "/".join(PLACEHOLDER if is_id_segment(s) else s for s in path.split("/"))


def path_of(url: str) -> str:
    """The path part of an absolute URL or of a path with a query string.

    >>> path_of("https://shop.example:8443/cart/42?x=1#top"), path_of("/dispatch?customer=123")
    ('/cart/42', '/dispatch')
    """
    path = _QUERY_RE.split(_ORIGIN_RE.sub("", url, count=1), maxsplit=1)[0]
    return path or "/"


def path_of_sql(expr: str) -> str:
    """SQL twin of :func:`path_of` (NULL stays NULL)."""
    stripped = f"regexp_replace({expr}, '{_ORIGIN}', '')"
    path = f"regexp_extract({stripped}, '^[^?#]*')"
    return f"CASE WHEN {path} = '' THEN '/' ELSE {path} END"


def is_id_segment_sql(segment: str) -> str:
    """SQL twin of :func:`is_id_segment` for the segment expression ``segment``."""
    return (
        f"(regexp_full_match({segment}, '{_DIGITS}') "
        f"OR regexp_full_match({segment}, '{_UUID}') "
        f"OR (length({segment}) >= {_HASH_MIN} AND regexp_full_match({segment}, '{_HASH}')) "
        f"OR regexp_matches({segment}, '{_DIGIT_RUN}'))"
    )


def path_template_sql(expr: str) -> str:
    """SQL twin of :func:`path_template` (NULL stays NULL)."""
    fold = is_id_segment_sql("seg")
    return (
        f"array_to_string(list_transform(string_split({expr}, '/'), "
        f"lambda seg: CASE WHEN {fold} THEN '{PLACEHOLDER}' ELSE seg END), '/')"
    )


def route_of(route: str, scope: str | None = None) -> str:
    """``route`` with a leading slash when it is a path given without one; ``scope`` is
    the instrumentation scope of the span that named it.

    >>> route_of("orders/<int:pk>/"), route_of("/orders/{id}"), route_of("health")
    ('/orders/<int:pk>/', '/orders/{id}', 'health')
    >>> route_of("health", DJANGO_SCOPE)
    '/health'
    """
    if scope == DJANGO_SCOPE and route and not route.startswith("/"):
        return "/" + route
    if _BARE_ROUTE_RE.fullmatch(route) and "://" not in route:
        return "/" + route
    return route


def route_sql(expr: str, scope: str | None = None) -> str:
    """SQL twin of :func:`route_of` (NULL stays NULL); ``scope`` an SQL expression of the
    scope name, or None where the rows say nothing of it."""
    bare = f"regexp_full_match({expr}, '{_BARE_ROUTE}') AND NOT contains({expr}, '://')"
    if scope is not None:
        rooted = f"{scope} = '{DJANGO_SCOPE}' AND {expr} <> '' AND NOT starts_with({expr}, '/')"
        bare = f"coalesce({rooted}, false) OR {bare}"
    return f"CASE WHEN {bare} THEN '/' || {expr} ELSE {expr} END"
