"""Advice in the service's own language: a Node.js service is not told to run py-spy."""

from __future__ import annotations

import json

import pytest

from correlate.analysis import open_run, stack
from correlate.analysis.detectors import unexplained_time
from correlate.kinds import FindingKind

from .builders import RunBuilder
from .test_detectors import closed_loop, findings
from .test_leak import analysed
from .test_pool_errors import fail_fast

KNEX = (
    "KnexTimeoutError",
    "Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a "
    ".transacting(trx) call?",
)


def _said(b: RunBuilder, language: str | None, scope: str | None = None) -> RunBuilder:
    resource = None if language is None else json.dumps({"telemetry.sdk.language": language})
    for span in b.spans:
        span["resource"] = resource
        span["scope_name"] = scope
    return b


def _language(b: RunBuilder, service: str | None = None) -> str | None:
    with open_run(b.build(), "r") as run:
        return stack.language(run, service)


def _one_request(service: str = "svc") -> RunBuilder:
    b = RunBuilder()
    b.request(b.new_id("t"), 0, 10, service=service)
    return b


@pytest.mark.parametrize(
    ("language", "scope", "expected"),
    [
        ("nodejs", None, "nodejs"),
        ("Java", None, "java"),
        (None, "@opentelemetry/instrumentation-http", "nodejs"),
        (None, "opentelemetry.instrumentation.flask", "python"),
        (None, "io.opentelemetry.tomcat-10.0", "java"),
        (None, "my-own-tracer", None),
        (None, None, None),
    ],
)
def test_the_language_is_read_from_the_resource_else_the_scope(
    language: str | None, scope: str | None, expected: str | None
) -> None:
    assert _language(_said(_one_request(), language, scope)) == expected


def test_services_in_two_languages_have_one_each_and_the_run_none() -> None:
    b = _said(_one_request("web"), "nodejs")
    b.spans += _said(_one_request("api"), "go").spans
    assert _language(b, "web") == "nodejs" and _language(b, "api") == "go"
    assert _language(b) is None


@pytest.mark.parametrize(
    ("language", "named", "not_named"),
    [
        ("nodejs", "`node --cpu-prof`", "py-spy"),
        ("python", "py-spy", "node"),
        (None, "a sampling profiler under", "py-spy"),
    ],
)
def test_unexplained_time_names_a_profiler_of_the_services_language(
    language: str | None, named: str, not_named: str
) -> None:
    b = RunBuilder()
    closed_loop(b, lambda t, u: {"db": 10, "app": 120}, seconds=20)
    (f,) = findings(_said(b, language), unexplained_time)
    assert named in f.suggestion and not_named not in f.suggestion


def test_a_knex_leak_is_fixed_in_knexs_words_and_named_without_python_tools() -> None:
    b = RunBuilder()
    fail_fast(b, leaks=lambda n, status: status == 409, said=KNEX)
    found, _ = analysed(_said(b, "nodejs"))
    (f,) = [f for f in found if f.kind == FindingKind.POOL_LEAK]
    assert "`trx.commit()` or `trx.rollback()`" in f.suggestion
    assert "putconn" not in f.suggestion and "correlate.instrument" not in f.suggestion


def test_a_psycopg2_leak_keeps_psycopg2s_words() -> None:
    b = RunBuilder()
    fail_fast(b, leaks=lambda n, status: status == 409)
    found, _ = analysed(_said(b, "python"))
    (f,) = [f for f in found if f.kind == FindingKind.POOL_LEAK]
    assert "`pool.putconn(conn)`" in f.suggestion and "trx" not in f.suggestion


@pytest.mark.parametrize(
    ("language", "named", "not_named"),
    [("nodejs", "Sequelize include", "SQLAlchemy"), ("python", "selectinload", "Sequelize")],
)
def test_an_n_plus_one_names_the_eager_loading_of_the_services_orms(
    language: str, named: str, not_named: str
) -> None:
    from correlate.analysis.detectors import n_plus_one

    b = RunBuilder()
    for i in range(10):
        trace = b.new_id("t")
        r = b.request(trace, i * 1000, i * 1000 + 300, "/orders")
        for n in range(12):
            b.query(
                trace,
                r,
                i * 1000 + n * 20,
                i * 1000 + n * 20 + 15,
                f"SELECT * FROM c WHERE id = {n}",
            )
    (f,) = findings(_said(b, language), n_plus_one)
    assert named in f.suggestion and not_named not in f.suggestion


@pytest.mark.parametrize(
    ("pool", "language", "scope", "said"),
    [
        ("knex (tarn)", "nodejs", None, "knex.transaction"),
        (None, "nodejs", "@opentelemetry/instrumentation-sequelize", "sequelize.transaction"),
        (None, "java", None, "@Transactional"),
        (None, "nodejs", "@opentelemetry/instrumentation-http", ""),
    ],
)
def test_the_transaction_block_is_the_services_own_library(
    pool: str | None, language: str, scope: str | None, said: str
) -> None:
    with open_run(_said(_one_request(), language, scope).build(), "r") as run:
        block = stack.transaction_block(pool or stack.library(run), stack.language(run))
    assert (said in block) if said else block == ""


@pytest.mark.parametrize("language", ["nodejs", "go", None])
def test_watch_is_not_suggested_to_a_run_that_was_watched(language: str | None) -> None:
    assert "correlate watch" in stack.pool_telemetry(language)
    assert "correlate watch" not in stack.pool_telemetry(language, watched=True)
    assert "correlate watch" not in stack.name_the_leak(language, watched=True)
