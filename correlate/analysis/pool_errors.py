"""Requests that failed for want of a pooled connection, told by the error they raised.

Most pools make no span for a checkout: psycopg2's and psycopg's pools, HikariCP, the
ADO.NET providers, ActiveRecord, knex. When one runs dry, though, it fails the request
in words of its own ("connection pool exhausted", "couldn't get a connection after
5.00 sec", "Connection is not available, request timed out after 30000ms"), and the
OpenTelemetry instrumentation of the web framework records them on the request's span
as an ``exception`` event (``exception.type``, ``exception.message``) or as the span's
status description. :data:`SIGNATURES` lists the words of each pool; a match is a
*failed checkout*: at that moment every connection of the pool was taken.

For a service whose spans cover no checkout (no ``connect`` span), each such failure
becomes a failed pool part of its request (:data:`PARTS_SQL`): its time is pool wait in
the request's breakdown, the pool detector counts it as a checkout that failed, and
:mod:`correlate.analysis.pool_holders` reads it as a wait, so the pool's capacity can
still be followed over the run (a leak, or saturation). Where checkout spans exist, their
own failures are the waits and these are not counted twice.

A failure is dated by its event (the instrumentation records it when the exception
reaches it, at most the request's end), else by the end of the span whose status says
it; the wait it ended began at the end of the request's last database, pool or outgoing
call before it, or at the request's start: a pool that fails at once (psycopg2) waited
nothing, one that blocks (psycopg's, HikariCP) waited that long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from correlate.analysis.run import Run


@dataclass(frozen=True)
class Signature:
    """How one pool says it has no connection to give."""

    pool: str
    #: a regular expression over ``type: message`` in lower case
    pattern: str
    #: where the words come from
    source: str
    #: how to return its connection on every path, in its own idiom
    give_back: str = ""


SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "psycopg2 (ThreadedConnectionPool, SimpleConnectionPool)",
        r"connection pool exhausted",
        "https://github.com/psycopg/psycopg2/blob/master/lib/pool.py",
        "give it back in a `finally` (`pool.putconn(conn)`)",
    ),
    Signature(
        "psycopg_pool (psycopg 3; Django 5.1's pool)",
        r"couldn't get a connection after",
        "https://github.com/psycopg/psycopg/blob/master/psycopg_pool/psycopg_pool/pool.py",
        "take it with a context manager (`with pool.connection() as conn:`)",
    ),
    Signature(
        "SQLAlchemy (QueuePool, AsyncAdaptedQueuePool)",
        r"queuepool limit of size [0-9]+ overflow -?[0-9]+ reached",
        "https://github.com/sqlalchemy/sqlalchemy/blob/main/lib/sqlalchemy/pool/impl.py",
        (
            "take it with a context manager (`with engine.connect() as conn:` / `with "
            "Session() as session:`) or release it in a `finally`"
        ),
    ),
    Signature(
        "HikariCP",
        r"connection is not available, request timed out after",
        "https://github.com/brettwooldridge/HikariCP/blob/dev/src/main/java/com/zaxxer/hikari/pool/HikariPool.java",
        "take it with try-with-resources (`try (Connection c = ds.getConnection())`)",
    ),
    Signature(
        "Apache Commons DBCP",
        r"cannot get a connection, pool error",
        "https://github.com/apache/commons-dbcp",
        "take it with try-with-resources (`try (Connection c = ds.getConnection())`)",
    ),
    Signature(
        "node-postgres (pg.Pool)",
        r"timeout exceeded when trying to connect",
        "https://github.com/brianc/node-postgres/blob/master/packages/pg-pool/index.js",
        (
            "release it in a `finally` (`client.release()`), or run single statements with "
            "`pool.query`, which releases for you"
        ),
    ),
    Signature(
        "generic-pool (Sequelize, TypeORM on MySQL, …)",
        r"resourcerequest timed out|connectionacquiretimeouterror",
        "https://github.com/coopernurse/node-pool",
        (
            "release what you acquire in a `finally`, and prefer managed transactions "
            "(Sequelize: `sequelize.transaction(async (t) => …)`)"
        ),
    ),
    Signature(
        "knex (tarn)",
        r"timeout acquiring a connection\. the pool is probably full",
        "https://github.com/knex/knex",
        (
            "end every transaction with `trx.commit()` or `trx.rollback()`, or take it with "
            "`knex.transaction(async (trx) => …)`, which ends it for you"
        ),
    ),
    Signature(
        "Prisma (P2024)",
        r"timed out fetching a new connection from the connection pool",
        "https://www.prisma.io/docs/orm/reference/error-reference#p2024",
        (
            "end every interactive transaction (`prisma.$transaction(async (tx) => …)`) and "
            "keep slow work outside it"
        ),
    ),
    Signature(
        "Npgsql (.NET)",
        r"the connection pool has been exhausted",
        "https://github.com/npgsql/npgsql",
        "open it with `using` / `await using`",
    ),
    Signature(
        "Microsoft.Data.SqlClient, MySql.Data (.NET)",
        r"timeout period elapsed prior to obtaining a connection from the pool",
        "https://learn.microsoft.com/en-us/sql/connect/ado-net/sql-server-connection-pooling",
        "open it with `using` / `await using`",
    ),
    Signature(
        "MySqlConnector (.NET)",
        r"all pooled connections are in use",
        "https://github.com/mysql-net/MySqlConnector",
        "open it with `using` / `await using`",
    ),
    Signature(
        "ActiveRecord (Rails)",
        r"could not obtain a connection from the pool",
        "https://github.com/rails/rails/blob/main/activerecord/lib/active_record/connection_adapters/abstract/connection_pool/queue.rb",
        "take it with `with_connection` rather than `checkout`",
    ),
)

#: One regular expression for all of them (lower-case text).
PATTERN = "|".join(f"(?:{s.pattern})" for s in SIGNATURES)

#: How much of an error's text is searched for a pool's or a driver's words. They come
#: first (``PoolError: connection pool exhausted``, then any detail), and a hostile or huge
#: message (a request's whole body echoed back) must not make every query that reads the
#: run's errors lower-case and search all of it, once per span.
HEAD_CHARS = 4096


def head_sql(text: str) -> str:
    """SQL: the lower-case head of ``text`` (:data:`HEAD_CHARS`), where words are sought."""
    return f"lower(left({text}, {HEAD_CHARS}))"


def exception_sql(attributes: str) -> str:
    """SQL: ``[type, message]`` of an exception event's JSON ``attributes``, read in one
    parse (each ``->>`` parses all of a huge message again)."""
    return f"""json_extract_string({attributes}, ['$."exception.type"', '$."exception.message"'])"""


def exception_text_sql(words: str) -> str:
    """SQL: ``type: message`` of :func:`exception_sql`'s ``words`` (a column: each
    reference to the extraction itself would parse the JSON again), as :func:`pool_of`
    reads it."""
    return f"coalesce({words}[1], '') || ': ' || coalesce({words}[2], '')"


def pool_of(text: str) -> str | None:
    """The pool whose words ``text`` (an exception's type and message) are, if any, in its
    first :data:`HEAD_CHARS` characters, as the analysis's SQL reads them.

    >>> pool_of("psycopg2.pool.PoolError: connection pool exhausted")
    'psycopg2 (ThreadedConnectionPool, SimpleConnectionPool)'
    >>> pool_of("psycopg2.errors.UniqueViolation: duplicate key") is None
    True
    """
    low = text[:HEAD_CHARS].lower()
    for s in SIGNATURES:
        if re.search(s.pattern, low):
            return s.pool
    return None


#: The most of an error's text a finding quotes: the pool's words and some context.
QUOTE_CHARS = 240


def quoted(text: str) -> str:
    """``text`` as a finding quotes it: whole when short, else the pool's words with up to
    a third of :data:`QUOTE_CHARS` of context on each side, cuts marked ``…``.

    >>> q = quoted("E: " + "x" * 500 + " connection pool exhausted " + "y" * 500)
    >>> q[:4], q[-4:], len(q), "x connection pool exhausted y" in q
    ('…xxx', 'yyy…', 187, True)
    """
    if len(text) <= QUOTE_CHARS:
        return text
    match = re.search(PATTERN, text.lower())
    # lower() keeps the length of nearly all text; where it does not, cut from the start
    if match is None or len(text.lower()) != len(text):
        return text[: QUOTE_CHARS - 1] + "…"
    side = QUOTE_CHARS // 3
    start, end = max(0, match.start() - side), min(len(text), match.end() + side)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


#: SQL: ``raised`` and ``error_parts``, steps of ``WITH`` in the parts' statement
#: (:mod:`correlate.analysis.requests`), after its ``req`` (``th``, ``rh``, ``trace_id``,
#: ``request_id``, ``service``, ``r0``, ``r1``) and ``span_parts``. ``raised``: per
#: request, when it first failed for want of a connection (not a request that only repeats
#: the words of a request it called); ``error_parts``: that wait, as a
#: failed pool part (no span id; status ``ERROR``), for requests of a service whose spans
#: cover no checkout. Its ``$pattern`` is :data:`PATTERN`.
PARTS_SQL = f"""
said AS (
    SELECT trace_id, span_id, t, {head_sql(exception_text_sql("words"))} AS head
    FROM (SELECT trace_id, span_id, ev.time_ns AS t, {exception_sql("ev.attributes")} AS words
          FROM (SELECT trace_id, span_id, unnest(events) AS ev
                FROM spans WHERE run_id = $run AND len(events) > 0) AS x
          WHERE ev.name = 'exception') AS y
    UNION ALL
    SELECT trace_id, span_id, end_ns AS t, {head_sql("': ' || status_message")} AS head
    FROM spans
    WHERE run_id = $run AND status_code = 'ERROR' AND status_message IS NOT NULL
),
said_by AS (
    SELECT o.th, o.rh, min(f.t) AS t
    FROM (SELECT hash(trace_id) AS th, hash(span_id) AS sh, t FROM said
          WHERE regexp_matches(head, $pattern)) AS f
    JOIN {{p}}_owner o ON o.th = f.th AND o.sh = f.sh
    GROUP BY o.th, o.rh
),
-- a request whose call to another request that says the words failed: the caller only
-- repeats them (gRPC sends the exception's text back as the status details)
repeated AS (
    SELECT DISTINCT o.th, o.rh
    FROM said_by c
    JOIN {{p}}_tree t ON t.th = c.th AND t.sh = c.rh
    JOIN {{p}}_owner o ON o.th = t.th AND o.sh = t.ph
),
raised AS (
    SELECT s.th, s.rh, s.t
    FROM said_by s
    LEFT JOIN repeated x ON x.th = s.th AND x.rh = s.rh
    JOIN {{p}}_tree q ON q.th = s.th AND q.sh = s.rh
    WHERE x.rh IS NULL
      -- a pool running dry is the server's failure: a request answered with a client error
      -- (a 400 echoing its input) did not fail for it, one told to come back later
      -- (408, 429) may have
      AND (coalesce(q.http_status_code, 500) NOT BETWEEN 400 AND 499
           OR q.http_status_code IN (408, 429))
),
spanned AS (
    -- services whose spans cover their checkouts: those spans' failures are the waits
    SELECT DISTINCT coalesce(r.service, '') AS svc
    FROM span_parts sp JOIN req r ON r.th = sp.th AND r.rh = sp.rh
    WHERE sp.category = 'pool'
),
error_parts AS (
    SELECT e.th, e.rh, r.trace_id, NULL AS span_id, NULL AS ph, 'pool' AS category,
           NULL AS db_system, NULL AS qh, NULL AS name, 'ERROR' AS status_code,
           -- the wait began when the request's last call before the failure ended
           greatest(r.r0, coalesce(max(sp.end_ns) FILTER (WHERE sp.end_ns <= e.t), r.r0))
               AS start_ns,
           least(greatest(e.t, r.r0), r.r1) AS end_ns
    FROM raised e
    JOIN req r ON r.th = e.th AND r.rh = e.rh
    LEFT JOIN span_parts sp ON sp.th = e.th AND sp.rh = e.rh AND sp.category IS NOT NULL
    WHERE coalesce(r.service, '') NOT IN (SELECT svc FROM spanned)
    GROUP BY e.th, e.rh, r.trace_id, e.t, r.r0, r.r1
)"""

#: SQL: the failed pool parts :data:`PARTS_SQL` makes, among a run's ``parts``.
IS_ERROR_PART = "(category = 'pool' AND span_id IS NULL AND status_code = 'ERROR')"


def said(run: Run) -> tuple[str | None, str | None]:
    """(pool, its words) most often said by the run's requests that failed for want of a
    connection from a pool whose spans cover no checkout; (None, None) without any.

    An exception event's words come before a status description's: the event names the
    type in full (``psycopg2.pool.PoolError``), where Flask's instrumentation describes
    the same error by its bare class name (``PoolError: connection pool exhausted``)."""
    parts = run.table("parts")
    # the head where the words are sought, and as far past it as a quote of them reaches
    cut = HEAD_CHARS + QUOTE_CHARS
    rows = run.con.execute(
        f"""
        SELECT left(coalesce(words[1], ''), {cut}) AS type,
               left(coalesce(words[2], ''), {cut}) AS message, count(*) AS n
        FROM (SELECT {exception_sql("ev.attributes")} AS words
              FROM (SELECT unnest(s.events) AS ev
                    FROM (SELECT DISTINCT trace_id FROM {parts} WHERE {IS_ERROR_PART}) e
                    JOIN spans s ON s.run_id = $run AND s.trace_id = e.trace_id
                    WHERE len(s.events) > 0) AS x
              WHERE ev.name = 'exception') AS y
        GROUP BY type, message
        UNION ALL
        SELECT '' AS type, left(s.status_message, {cut}) AS message, count(*) AS n
        FROM (SELECT DISTINCT trace_id FROM {parts} WHERE {IS_ERROR_PART}) e
        JOIN spans s ON s.run_id = $run AND s.trace_id = e.trace_id
        WHERE s.status_code = 'ERROR' AND s.status_message IS NOT NULL
        GROUP BY message
        ORDER BY type = '', n DESC, type, message LIMIT 50
        """,
        {"run": run.run_id},
    ).fetchall()
    for type_, message, _ in rows:
        text = f"{type_}: {message}" if type_ and message else type_ or message
        pool = pool_of(text)
        if pool:
            return pool, quoted(text)
    return None, None
