"""Route templates (``correlate.routes``): ids folded out of paths, the same in Python and SQL."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.routes import (
    PLACEHOLDER,
    is_id_segment,
    path_of,
    path_of_sql,
    path_template,
    path_template_sql,
    route_of,
    route_sql,
)

from .conftest import require_chdb


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/books/123/reviews", "/books/{id}/reviews"),
        ("/authors/42/books", "/authors/{id}/books"),
        ("/orders/3F2B8C1E-1B2A-4C3D-9E8F-0A1B2C3D4E5F", "/orders/{id}"),
        ("/blobs/5e8ff9bf55ba3508199d22e984129be6", "/blobs/{id}"),
        ("/cart/c-2000", "/cart/{id}"),
        ("/prices/SKU-1037", "/prices/{id}"),
        ("/drivers/T759351C", "/drivers/{id}"),
        ("/reports/2024-06-01/summary", "/reports/{id}/summary"),
        ("/api/v1/users", "/api/v1/users"),
        ("/oauth2/sha256/html5", "/oauth2/sha256/html5"),
        ("/static/app.5f3a9b2c.js", "/static/app.5f3a9b2c.js"),
        ("/prices/{sku}", "/prices/{sku}"),
        ("/deadbeefdeadbeef", "/deadbeefdeadbeef"),  # 16 hex letters, no digit: a word
        ("/", "/"),
        ("", ""),
        ("/a//7/", "/a//{id}/"),
    ],
)
def test_path_template_folds_ids(path: str, template: str) -> None:
    assert path_template(path) == template


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("http://pricing:8080/prices/SKU-1196", "/prices/SKU-1196"),
        ("https://user:secret@shop.example/cart/42?x=1#top", "/cart/42"),
        ("/dispatch?customer=123&nonse=0.73", "/dispatch"),
        ("http://0.0.0.0:8083/route?dropoff=115%2C277", "/route"),
        ("http://localhost:9777", "/"),
        ("/books#reviews", "/books"),
        ("?only=query", "/"),
        ("/redirect/http://elsewhere/x", "/redirect/http://elsewhere/x"),
    ],
)
def test_path_of_keeps_the_path_part(url: str, path: str) -> None:
    assert path_of(url) == path


_SEGMENT = st.one_of(
    st.text(alphabet="abcdefABCDEF0123456789-_.{}~%:xyz", max_size=40),
    st.uuids().map(str),
    st.integers(min_value=0).map(str),
    st.from_regex(r"[a-z]{1,6}-[0-9]{1,8}", fullmatch=True),
)
_PATHS = st.lists(_SEGMENT, max_size=8).map(lambda parts: "/" + "/".join(parts))
_URLS = st.one_of(
    _PATHS,
    st.tuples(
        st.sampled_from(["http", "https", "grpc+tls"]),
        st.from_regex(r"[a-z0-9.:@-]{0,20}", fullmatch=True),
        _PATHS,
        st.text(alphabet="?#=&ab12", max_size=10),
    ).map(lambda t: f"{t[0]}://{t[1]}{t[2]}{t[3]}"),
    st.text(max_size=30),
)


@given(_PATHS)
def test_template_is_idempotent_and_keeps_the_segments(path: str) -> None:
    template = path_template(path)
    assert path_template(template) == template
    assert template.count("/") == path.count("/")
    for before, after in zip(path.split("/"), template.split("/"), strict=True):
        assert after == (PLACEHOLDER if is_id_segment(before) else before)


@given(st.lists(st.integers(min_value=0), min_size=1, max_size=5))
def test_numbers_never_survive(ids: list[int]) -> None:
    path = "".join(f"/items/{i}" for i in ids)
    assert path_template(path) == "/items/{id}" * len(ids)


@settings(max_examples=60, deadline=None)
@given(st.lists(_URLS, min_size=1, max_size=20))
def test_sql_twins_agree_with_python(urls: list[str]) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE u (i INTEGER, url VARCHAR)")
    con.executemany("INSERT INTO u VALUES (?, ?)", list(enumerate(urls)))
    rows = con.execute(
        f"SELECT {path_of_sql('url')}, {path_template_sql('url')}, "
        f"{path_template_sql(path_of_sql('url'))} FROM u ORDER BY i"
    ).fetchall()
    expected = [(path_of(u), path_template(u), path_template(path_of(u))) for u in urls]
    assert rows == expected


def test_sql_twins_keep_null() -> None:
    con = duckdb.connect()
    row = con.execute(
        f"SELECT {path_of_sql('NULL::VARCHAR')}, {path_template_sql('NULL::VARCHAR')}"
    ).fetchone()
    assert row == (None, None)


ROUTES = [
    ("orders/<int:pk>/", "/orders/<int:pk>/"),  # Django's path() route
    ("api/v1/items/{item_id}", "/api/v1/items/{item_id}"),
    ("/orders/<int:pk>/", "/orders/<int:pk>/"),
    ("health", "health"),  # one word may be a name: left as it is
    ("^orders/(?P<pk>[0-9]+)/$", "^orders/(?P<pk>[0-9]+)/$"),  # re_path(): a pattern
    ("GET orders/", "GET orders/"),
    ("http://shop/orders/1", "http://shop/orders/1"),
    ("", ""),
    # not paths: a URI with a scheme, a Windows path, whitespace, regular expressions
    ("mailto:a/b", "mailto:a/b"),
    ("C:\\x/y", "C:\\x/y"),
    ("a/b\t", "a/b\t"),
    ("orders/\\d+/", "orders/\\d+/"),
    ("orders/[0-9]+", "orders/[0-9]+"),
    ("orders/*", "orders/*"),
    # parameters: ASP.NET and Laravel optional ones, Django converters, constraints
    ("api/items/{id?}", "/api/items/{id?}"),
    ("api/items/{id}", "/api/items/{id}"),
    ("<slug:cat>/items/", "/<slug:cat>/items/"),
    ("api/{id:int}/x", "/api/{id:int}/x"),
    ("{tenant}/orders", "/{tenant}/orders"),
]


def _route_in_sql(route: str | None) -> str | None:
    con = duckdb.connect()
    (row,) = con.execute(
        f"SELECT {route_sql('r')} FROM (SELECT ?::VARCHAR AS r)", [route]
    ).fetchall()
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("route", "shown"), ROUTES)
def test_a_route_without_its_leading_slash_gets_one(route: str, shown: str) -> None:
    assert route_of(route) == shown
    assert _route_in_sql(route) == shown
    assert _route_in_sql(None) is None


@pytest.mark.clickhouse
def test_route_twin_agrees_in_clickhouse() -> None:
    """ClickHouse matches bytes through RE2, as DuckDB does characters: the same answers."""
    require_chdb()
    import chdb

    from correlate.clickhouse.derive import clickhouse_expr
    from correlate.clickhouse.translate import literal

    expr = clickhouse_expr(route_sql("r"))
    for route, shown in [*ROUTES, ("café/€", "/café/€")]:
        query = f"SELECT {expr} FROM (SELECT {literal(route)} AS r)"
        assert chdb.query(query, "TSVRaw").data().removesuffix("\n") == shown, route


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab/<>{}: ^$()?#|.-\\[]+*\t\xa0", max_size=12))
def test_route_twins_agree_and_are_idempotent(route: str) -> None:
    assert _route_in_sql(route) == route_of(route)
    assert route_of(route_of(route)) == route_of(route)


#: opentelemetry-instrumentation-django's routes are relative to the site's root, whatever
#: they look like; another scope's are read by the rule above.
DJANGO = "opentelemetry.instrumentation.django"
SCOPED_ROUTES = [
    ("health", DJANGO, "/health"),
    ("health", "io.opentelemetry.tomcat-10.0", "health"),
    ("health", None, "health"),
    ("orders/<int:pk>/", DJANGO, "/orders/<int:pk>/"),
    ("^orders/(?P<pk>[0-9]+)/$", DJANGO, "/^orders/(?P<pk>[0-9]+)/$"),
    ("/health", DJANGO, "/health"),
    ("", DJANGO, ""),
    ("api/items/{id?}", "other", "/api/items/{id?}"),
]


def _scoped_route_in_sql(route: str | None, scope: str | None) -> str | None:
    con = duckdb.connect()
    (row,) = con.execute(
        f"SELECT {route_sql('r', 's')} FROM (SELECT ?::VARCHAR AS r, ?::VARCHAR AS s)",
        [route, scope],
    ).fetchall()
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("route", "scope", "shown"), SCOPED_ROUTES)
def test_a_django_route_gets_its_slash_whatever_it_looks_like(
    route: str, scope: str | None, shown: str
) -> None:
    assert route_of(route, scope) == shown
    assert _scoped_route_in_sql(route, scope) == shown
    assert _scoped_route_in_sql(None, scope) is None


@pytest.mark.clickhouse
def test_scoped_route_twin_agrees_in_clickhouse() -> None:
    require_chdb()
    import chdb

    from correlate.clickhouse.derive import clickhouse_expr
    from correlate.clickhouse.translate import literal

    expr = clickhouse_expr(route_sql("r", "s"))
    for route, scope, shown in SCOPED_ROUTES:
        query = f"SELECT {expr} FROM (SELECT {literal(route)} AS r, {literal(scope)} AS s)"
        assert chdb.query(query, "TSVRaw").data().removesuffix("\n") == shown, route


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet="ab/<>{}: ^$()?#|.-\\[]+*\t\xa0", max_size=12),
    st.sampled_from([DJANGO, "other", None]),
)
def test_scoped_route_twins_agree_and_are_idempotent(route: str, scope: str | None) -> None:
    assert _scoped_route_in_sql(route, scope) == route_of(route, scope)
    assert route_of(route_of(route, scope), scope) == route_of(route, scope)
