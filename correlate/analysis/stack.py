"""What a service is written in, so that advice names that stack's own tools.

A Node.js service told to run py-spy has been told nothing. OpenTelemetry SDKs say their
language in the resource (``telemetry.sdk.language``: ``python``, ``nodejs``, ``java``,
``go``, ``dotnet``, ``ruby``, ``php``, ``rust``, …); where a file lost its resource
(Jaeger and Zipkin keep only some tags), the instrumentation scope's name still tells
the common SDKs apart. A service whose language is unknown gets advice that names no
tool it may not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlate.analysis.pool_errors import SIGNATURES

if TYPE_CHECKING:
    from correlate.analysis.run import Run

#: scope-name prefixes of each SDK's instrumentations, for spans without the resource
_SCOPES = (
    ("opentelemetry.instrumentation.", "python"),
    ("@opentelemetry/", "nodejs"),
    ("io.opentelemetry.", "java"),
    ("go.opentelemetry.io/", "go"),
    ("OpenTelemetry.Instrumentation.", "dotnet"),
    ("OpenTelemetry::Instrumentation::", "ruby"),
    ("io.opentelemetry.contrib.php.", "php"),
)

#: services read for the run's one language, at most
MAX_SERVICES = 50

#: a sampling profiler of each language, to find where a route's own time goes
PROFILERS = {
    "python": "py-spy or pyinstrument",
    "nodejs": "`node --cpu-prof` or clinic flame",
    "java": "async-profiler or Java Flight Recorder",
    "go": "pprof",
    "dotnet": "dotnet-trace",
    "ruby": "stackprof or rbspy",
    "php": "Excimer or SPX",
    "rust": "perf or cargo flamegraph",
}

#: how to return a pooled connection on every path, in each language's own idiom
GIVE_BACK = {
    # checkout spans in Python are SQLAlchemy's (its instrumentation's connect span)
    "python": next(sig.give_back for sig in SIGNATURES if sig.pool.startswith("SQLAlchemy")),
    "nodejs": "release it in a `finally` (`client.release()`), and end every transaction "
    "with a commit or rollback on every path, error paths first",
    "java": "take it with try-with-resources (`try (Connection c = ds.getConnection())`)",
    "go": "`defer rows.Close()` and `defer tx.Rollback()` right after each succeeds",
    "dotnet": "take it with `using` / `await using`",
    "ruby": "take it with `with_connection` rather than `checkout`",
}

#: how each language's ORMs load related rows with the parent query
EAGER = {
    "python": "SQLAlchemy selectinload / joinedload, Django select_related / prefetch_related",
    "nodejs": "Sequelize include, TypeORM relations or leftJoinAndSelect, Prisma include, "
    "a join or whereIn in knex",
    "java": "JPA JOIN FETCH or an entity graph, Hibernate @BatchSize",
    "dotnet": "EF Core Include",
    "php": "Eloquent with, Doctrine fetch joins",
    "ruby": "ActiveRecord includes / preload",
    "go": "GORM Preload, or a join with sqlx",
}


def language(run: Run, service: str | None = None) -> str | None:
    """The language ``service`` (or the run's every service, if they agree) is written
    in, or None if the spans do not say or the services differ."""
    if service is None:
        services = run.con.execute(
            "SELECT DISTINCT coalesce(service, '') FROM spans WHERE run_id = $run LIMIT $n",
            {"run": run.run_id, "n": MAX_SERVICES + 1},
        ).fetchall()
        if len(services) > MAX_SERVICES:
            return None  # too many services to say they agree
        # each service read on its own: a sample of the run's spans may be one service's
        said = {_said(run, str(svc)) for (svc,) in services} - {None}
        return said.pop() if len(said) == 1 else None
    return _said(run, service)


def _said(run: Run, service: str) -> str | None:
    """The one language ``service``'s spans say (resource, else scopes), or None."""
    where = "run_id = $run AND coalesce(service, '') = $svc"
    params = {"run": run.run_id, "svc": service}
    rows = run.con.execute(
        f"""
        SELECT DISTINCT lower(trim(resource->>'telemetry.sdk.language')) AS lang FROM (
            SELECT resource FROM spans WHERE {where} AND resource IS NOT NULL LIMIT 1000
        ) AS s
        """,
        params,
    ).fetchall()
    said = {str(lang) for (lang,) in rows if lang}
    if not said:
        scopes = run.con.execute(
            f"SELECT DISTINCT scope_name FROM spans WHERE {where} AND scope_name IS NOT NULL "
            "LIMIT 50",
            params,
        ).fetchall()
        said = {
            lang for (scope,) in scopes for prefix, lang in _SCOPES if str(scope).startswith(prefix)
        }
    return said.pop() if len(said) == 1 else None


def profiler(lang: str | None) -> str:
    """``'a sampling profiler (py-spy or pyinstrument)'`` for ``lang``."""
    tools = PROFILERS.get(lang or "")
    return f"a sampling profiler ({tools})" if tools else "a sampling profiler"


#: what shows a pool's checkouts or state with stock OpenTelemetry, per language, and how
#: `correlate watch` joins it where it is a way left (offered unless it ran already)
_POOL_TELEMETRY: dict[str, tuple[str, str | None]] = {
    "python": ("Record the run with correlate.instrument", None),
    "java": (
        "Send the OpenTelemetry Java agent's metrics to `correlate collect` too: it reports "
        "HikariCP's, DBCP's and c3p0's pools (db.client.connections.*)",
        None,
    ),
    "nodejs": (
        "With pg.Pool, @opentelemetry/instrumentation-pg spans each checkout "
        "(pg-pool.connect); knex, Sequelize and Prisma keep pools of their own",
        ": ",
    ),
}
_WATCH = "run `correlate watch` beside the load to see the database's sessions"


def pool_telemetry(lang: str | None, *, watched: bool = False) -> str:
    """What to record so the pool's checkouts or state show, for a service in ``lang``;
    ``watched``: ``correlate watch`` ran beside this load already."""
    said, joiner = _POOL_TELEMETRY.get(
        lang or "",
        (
            "Export the pool's metrics as OpenTelemetry's db.client.connection.* with the run",
            ", or ",
        ),
    )
    if joiner is not None and not watched:
        said += joiner + _WATCH
    return f"{said} (docs/run-directory.md)"


def give_back(pool: str | None, lang: str | None) -> str:
    """How to return a connection on every path: in the words of ``pool`` (a
    :data:`~correlate.analysis.pool_errors.SIGNATURES` name) if known, else of ``lang``."""
    said = next((sig.give_back for sig in SIGNATURES if sig.pool == pool and sig.give_back), "")
    return said or GIVE_BACK.get(
        lang or "",
        "release it in a `finally`, or take it in the language's scoped form (a context "
        "manager, `using`, try-with-resources)",
    )


def name_the_leak(lang: str | None, *, watched: bool = False) -> str:
    """What to record next time so the leaking route and line are named."""
    if lang == "python":
        return "Record the run with correlate.instrument to name the route and line."
    if watched:
        return (
            "Wrap each checkout in a span (or export the pool's metrics) to name the route: "
            "the database's sessions matched no request here."
        )
    return (
        "Run `correlate watch --dsn URL --out RUN` beside the next load: the database's "
        "sessions left idle in a transaction name the requests that took them."
    )


def eager_loading(lang: str | None) -> str:
    """The ORMs' ways to load related rows with their parents, in ``lang`` (all the
    common ones when it is not known)."""
    return EAGER.get(
        lang or "",
        "SQLAlchemy selectinload / joinedload, Django select_related / prefetch_related, JPA "
        "JOIN FETCH or an entity graph, EF Core Include, Eloquent with, Sequelize include",
    )


#: a transaction block that ends its transaction whatever happens inside, per pool
#: (the library's name and its pool's, as :data:`SIGNATURES` names it, in lower case)
_BLOCKS = (
    (("knex",), "knex: `knex.transaction(async (trx) => …)`"),
    (("sequelize", "generic-pool"), "Sequelize: `sequelize.transaction(async (t) => …)`"),
    (("prisma",), "Prisma: `prisma.$transaction(async (tx) => …)`"),
    (("sqlalchemy",), "SQLAlchemy: `with session.begin():`"),
    (("psycopg",), "psycopg: `with conn.transaction():`"),
)
#: and per language, where the pool is not known
_LANGUAGE_BLOCKS = {
    "python": "SQLAlchemy: `with session.begin():`",
    "java": "Spring: `@Transactional`",
    "dotnet": "`using var tx = conn.BeginTransaction()`",
    "ruby": "`ActiveRecord::Base.transaction do … end`",
}


def transaction_block(pool: str | None, lang: str | None) -> str:
    """``' (knex: `knex.transaction(…)`)'``: the library's block that ends a transaction
    on every path, for ``pool`` (a signature's name) or else ``lang``; empty if neither
    says which library it is."""
    name = (pool or "").lower()
    said = next((b for keys, b in _BLOCKS if name and name.startswith(keys)), None)
    said = said or _LANGUAGE_BLOCKS.get(lang or "")
    return f" ({said})" if said else ""


def library(run: Run) -> str | None:
    """The data library the run's instrumentation scopes name (``knex``, ``sequelize``,
    ``prisma``, ``sqlalchemy``, ``psycopg``), where one does: its advice is the most exact."""
    rows = run.con.execute(
        "SELECT DISTINCT lower(scope_name) FROM spans WHERE run_id = $run "
        "AND scope_name IS NOT NULL LIMIT 200",
        {"run": run.run_id},
    ).fetchall()
    names = " ".join(str(name) for (name,) in rows)
    return next((keys[0] for keys, _ in _BLOCKS if keys[0] in names), None)


def watched(run: Run) -> bool:
    """Whether ``correlate watch`` sampled the database beside this run."""
    row = run.con.execute(
        "SELECT count(*) FROM db_samples WHERE run_id = $run", {"run": run.run_id}
    ).fetchone()
    return bool(row and row[0])
