"""PostgreSQL capture: generic plans for statements with placeholders, and a statement text
that reaches the server only after PostgreSQL's own grammar has read it as one statement.

Placeholders become ``$1..$n`` (:func:`correlate.fingerprint.placeholders.to_numbered`).
The statement is prepared under ``plan_cache_mode = force_generic_plan`` and explained
with ``EXECUTE q(NULL, …)``; the generic plan does not look at the NULLs, whereas a
custom plan for NULL would be ``One-Time Filter: false``. Where PREPARE cannot infer a
parameter's type, that parameter is declared ``text`` and PREPARE is tried again.
PostgreSQL 16's ``EXPLAIN (GENERIC_PLAN)`` gives the same plan but cannot be sent over
the extended protocol (its ``$1`` become parameters the Bind message must supply), and
the extended protocol is what keeps a second statement from running; so PREPARE it is,
on every version.

What keeps the server safe from the text (it comes from spans, which the service under
test wrote):

1. The text is parsed by libpg_query (pglast), PostgreSQL's own parser: it must be
   exactly one SELECT, INSERT, UPDATE, DELETE or MERGE, else it is refused. The
   command built around it is parsed again and must be exactly one EXPLAIN or PREPARE.
2. Every command goes over the extended query protocol, whose Parse message carries one
   statement: a second statement is a server error, never executed.
3. The session is ``default_transaction_read_only = on`` and each statement runs in a
   ``BEGIN READ ONLY`` transaction that is rolled back, under ``statement_timeout`` and
   ``lock_timeout``; ``standard_conforming_strings = on`` so the server reads string
   literals as libpg_query does.
4. Every function the statement calls must be a built-in (``pg_catalog``) that is not in
   :data:`DENIED_FUNCTIONS`, and every operator (``A_Expr``, ``SubLink.operName``,
   ``SortBy.useOp``) a built-in, even for a plain EXPLAIN: the planner evaluates stable
   and immutable functions of constants while planning, and an error would quote them.
5. ``analyze=True`` executes only a SELECT with no data-modifying CTE, no ``FOR
   UPDATE``/``SHARE``, no ``INTO``, whose every function and operator is a built-in
   (``pg_catalog``) that is immutable or stable by ``pg_proc.provolatile``: volatile
   functions (``pg_terminate_backend``, ``pg_sleep``, ``nextval``, ``set_config``,
   ``dblink``…) are refused with the function's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from correlate.fingerprint.placeholders import split_placeholders, to_numbered
from correlate.plans.capture.common import (
    NOT_ANALYZED_PLACEHOLDERS,
    CapturedPlan,
    ServerFacts,
    Session,
    Statement,
    log,
    refusal,
    refused,
    relation_sizes,
    short_reason,
)

#: PostgreSQL settings recorded every time: the ones that move plans.
PG_SETTINGS = (
    "work_mem",
    "random_page_cost",
    "seq_page_cost",
    "effective_cache_size",
    "plan_cache_mode",
    "jit",
    "default_statistics_target",
    "max_parallel_workers_per_gather",
)

_PREPARED_NAME = "correlate_explain"
_PG_REASONS = {
    "57014": "timeout",  # query_canceled: statement_timeout
    "55P03": "lock_timeout",  # lock_not_available
    "42601": "syntax",
    "42P01": "missing_object",  # undefined_table
    "42703": "missing_object",  # undefined_column
    "42883": "missing_object",  # undefined_function
    "3F000": "missing_object",  # invalid_schema_name
    "25006": "refused",  # read_only_sql_transaction
}
#: Built-in functions never sent, even to a plain EXPLAIN: they read outside the
#: statement's tables (files, settings, other sessions, large objects), run SQL text,
#: or assign a transaction id. The planner evaluates stable ones while planning.
DENIED_FUNCTIONS = re.compile(
    r".*_to_xml.*|query_to_.*|cursor_to_.*|table_to_.*|schema_to_.*|database_to_.*"
    r"|pg_read_file|pg_read_binary_file|pg_ls_.*|pg_stat_file|pg_file_.*|pg_logdir_ls"
    r"|lo_.*|loread|lowrite|current_setting|pg_show_all_settings|pg_settings_get_flags"
    r"|pg_show_all_file_settings|pg_hba_file_rules|pg_ident_file_mappings|pg_current_logfile"
    r"|txid_.*|pg_current_xact_id.*|pg_current_snapshot|pg_export_snapshot"
    r"|pg_stat_get_activity|pg_stat_get_backend_.*|pg_get_backend_memory_contexts"
    r"|pg_stat_get_wal_receiver|pg_stat_get_subscription.*|pg_control_.*"
    r"|ts_stat|ts_rewrite|dblink.*"
)
_UNTYPED_PARAM = re.compile(r"could not determine data type of parameter \$(\d+)")
_EXPLAINABLE_NODES = frozenset(
    {"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}
)
_WRITING_NODES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
#: Objects with an oid below this were created by initdb: the built-ins.
_FIRST_NORMAL_OID = 16384


@dataclass(frozen=True)
class ParsedStatement:
    """What PostgreSQL's grammar says one statement is and calls."""

    kind: str
    functions: frozenset[tuple[str, ...]]
    operators: frozenset[str]
    writes: bool
    locks: bool
    into: bool


def _nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every (node type, node) in a libpg_query JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key[:1].isupper() and isinstance(value, dict):
                yield key, value
            yield from _nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def _names(items: Any) -> tuple[str, ...]:
    return tuple(i["String"]["sval"] for i in items or () if "String" in i)


def parse_statement(sql: str) -> ParsedStatement | tuple[str, str]:
    """Read ``sql`` with libpg_query; a (reason_code, reason) refusal unless it is exactly
    one statement EXPLAIN can plan.

    >>> parse_statement("SELECT 1 AS x$y$; COMMIT; DROP TABLE t; SELECT 1 AS z$y$")[0]
    'refused'
    >>> parse_statement("select count(*) from t where a = $1").kind
    'SelectStmt'
    """
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError as exc:
        return "syntax", f"PostgreSQL's parser refuses the text: {exc}"
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        return "refused", (
            f"PostgreSQL's parser reads {len(stmts)} statements in the text; "
            "only a single statement is explained"
        )
    stmt = stmts[0].get("stmt", {})
    kind = next(iter(stmt), "")
    if kind not in _EXPLAINABLE_NODES:
        return "not_explainable", (
            f"{kind.removesuffix('Stmt') or 'this'} statements have no query plan "
            "(only SELECT, INSERT, UPDATE, DELETE, MERGE and VALUES are explained)"
        )
    functions: set[tuple[str, ...]] = set()
    operators: set[str] = set()
    writes = kind in _WRITING_NODES
    locks = into = False
    for node_type, node in _nodes(stmt):
        if node_type == "FuncCall":
            functions.add(_names(node.get("funcname")))
        elif node_type == "A_Expr":
            operators.update(_names(node.get("name"))[-1:])
        elif node_type == "SubLink":  # x OP ANY (SELECT …)
            operators.update(_names(node.get("operName"))[-1:])
        elif node_type == "SortBy":  # ORDER BY x USING OP
            operators.update(_names(node.get("useOp"))[-1:])
        elif node_type in _WRITING_NODES:
            writes = True
        elif node_type == "SelectStmt":
            locks = locks or bool(node.get("lockingClause"))
            into = into or bool(node.get("intoClause"))
    return ParsedStatement(kind, frozenset(functions), frozenset(operators), writes, locks, into)


def _single_command(command: str, kinds: tuple[str, ...]) -> bool:
    """True when ``command`` parses as exactly one statement of one of ``kinds``."""
    from pglast.parser import ParseError, parse_sql_json

    try:
        stmts = json.loads(parse_sql_json(command)).get("stmts", [])
    except ParseError:
        return False
    return len(stmts) == 1 and next(iter(stmts[0].get("stmt", {})), "") in kinds


class _NotSingle(ValueError):
    """A command built around a verified statement did not parse as one statement."""


class PostgresSession(Session):
    dialect = "postgresql"
    password_sources = "in the URL, PGPASSWORD or ~/.pgpass"
    default_port = 5432

    def connect_args(self) -> dict[str, Any]:
        # libpq reads PGPASSWORD and ~/.pgpass itself when the URL has no password.
        return {"connect_timeout": 10, "application_name": "correlate-capture"}

    def open(self) -> None:
        super().open()
        # Transactions are begun and ended by hand, one per statement.
        self.conn.autocommit = True
        self.conn.prepare_threshold = None
        self.version_num = int(self.conn.info.server_version)
        with self.conn.cursor() as cur:
            # Even a command the checks misread cannot write or commit anything.
            for setting in (
                "SET default_transaction_read_only = on",
                "SET standard_conforming_strings = on",
                f"SET statement_timeout = {int(self.statement_timeout_ms)}",
                f"SET lock_timeout = {int(self.lock_timeout_ms)}",
            ):
                self._send(cur, setting)
        self._volatility: dict[tuple[str, ...], str] = {}

    @staticmethod
    def _send(cur: Any, command: str, params: Sequence[Any] | None = None) -> None:
        # binary=True makes psycopg use the extended protocol even without parameters:
        # one Parse message, one statement. The simple protocol would run several.
        cur.execute(command, params, binary=True)

    def rollback(self) -> None:
        if not self.conn.closed:
            self.conn.execute("ROLLBACK")

    def _begin(self, cur: Any) -> None:
        self._send(cur, "BEGIN READ ONLY")
        self._send(cur, f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
        self._send(cur, f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}")

    def facts(self) -> ServerFacts:
        with self.conn.cursor() as cur:
            self._begin(cur)
            try:
                self._send(cur, "SHOW server_version")
                version = str(cur.fetchone()[0])
                self._send(
                    cur,
                    "SELECT name, current_setting(name) FROM pg_settings "
                    "WHERE name = ANY(%s) OR (name LIKE 'enable%%' AND setting = 'off') "
                    "ORDER BY name",
                    (list(PG_SETTINGS),),
                )
                settings = {str(name): str(value) for name, value in cur.fetchall()}
                # reltuples is -1 for a table never vacuumed or analysed: no estimate.
                self._send(
                    cur,
                    "SELECT n.nspname, c.relname, c.reltuples FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p', 'm') AND c.reltuples >= 0 "
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
                )
                sizes = relation_sizes(cur.fetchall())
            finally:
                self._send(cur, "ROLLBACK")
        return ServerFacts("postgresql", version, settings, sizes)

    def function_refusal(self, parsed: ParsedStatement, analyze: bool) -> tuple[str, str] | None:
        """Why the functions or operators of ``parsed`` must not reach the server, or None.

        Even a plain EXPLAIN lets the planner evaluate immutable and stable functions of
        constant arguments (``current_setting('data_directory')``,
        ``table_to_xml('secrets', …)``), and an error then quotes their result. So every
        function must be a built-in the server knows, and not one of
        :data:`DENIED_FUNCTIONS`; every operator must be a built-in. Volatile built-ins are
        never evaluated while planning, so they are refused only when ``analyze`` runs the
        statement.
        """
        when = (
            "analyze runs the statement" if analyze else "planning evaluates functions of constants"
        )
        for name in sorted(parsed.functions):
            if name and DENIED_FUNCTIONS.fullmatch(name[-1].lower()):
                return "refused", (
                    f"{when}, and it calls {'.'.join(name)}(), which reads outside the "
                    "statement's tables or runs SQL text"
                )
            volatility = self._function_volatility(name)
            if volatility == "ok" or (volatility == "a volatile function" and not analyze):
                continue
            return "refused", (
                f"{when}, and it calls {'.'.join(name)}(), {volatility}; only built-in "
                f"{'immutable or stable ' if analyze else ''}functions are sent"
            )
        unsafe = self._unsafe_operators(parsed.operators, analyze)
        if unsafe:
            return "refused", (
                f"{when}, and its operator {unsafe} is not a built-in"
                f"{' immutable or stable' if analyze else ''} one"
            )
        return None

    def analyze_refusal(self, parsed: ParsedStatement) -> tuple[str, str] | None:
        """Why ``analyze`` must not execute ``parsed``, or None when it may."""
        if parsed.kind != "SelectStmt" or parsed.writes:
            return "refused", "analyze runs the statement, and this one writes"
        if parsed.locks:
            return "refused", "analyze runs the statement, and FOR UPDATE/SHARE takes locks"
        if parsed.into:
            return "refused", "analyze runs the statement, and SELECT INTO creates a table"
        return self.function_refusal(parsed, analyze=True)

    def _function_volatility(self, name: tuple[str, ...]) -> str:
        """``ok`` for a built-in immutable/stable function, else what it is instead."""
        if name not in self._volatility:
            *schema, proc = name
            with self.conn.cursor() as cur:
                self._begin(cur)
                try:
                    self._send(
                        cur,
                        "SELECT n.nspname, p.provolatile, p.oid::bigint FROM pg_proc p "
                        "JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE p.proname = %s AND (%s::text IS NULL OR n.nspname = %s)",
                        (proc, schema[-1] if schema else None, schema[-1] if schema else None),
                    )
                    rows = cur.fetchall()
                finally:
                    self._send(cur, "ROLLBACK")
            if not rows:
                verdict = "which the server does not know"
            elif any(n != "pg_catalog" or oid >= _FIRST_NORMAL_OID for n, _, oid in rows):
                verdict = "not a built-in function"
            elif any(v == "v" for _, v, _ in rows):
                verdict = "a volatile function"
            else:
                verdict = "ok"
            self._volatility[name] = verdict
        return self._volatility[name]

    def _unsafe_operators(self, operators: frozenset[str], analyze: bool) -> str | None:
        if not operators:
            return None
        with self.conn.cursor() as cur:
            self._begin(cur)
            try:
                self._send(
                    cur,
                    "SELECT o.oprname FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode "
                    "WHERE o.oprname = ANY(%s) AND ((%s AND p.provolatile = 'v') "
                    "OR o.oid::bigint >= %s OR p.oid::bigint >= %s) ORDER BY 1 LIMIT 1",
                    (sorted(operators), analyze, _FIRST_NORMAL_OID, _FIRST_NORMAL_OID),
                )
                row = cur.fetchone()
            finally:
                self._send(cur, "ROLLBACK")
        return str(row[0]) if row else None

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import psycopg

        split = split_placeholders(statement.text, None)
        why = refusal(statement.text, split, analyze)
        if why:
            return refused(statement, why)
        sql, nparams = to_numbered(statement.text)
        sql = sql.strip().rstrip(";").rstrip()
        parsed = parse_statement(sql)
        if isinstance(parsed, tuple):
            return refused(statement, parsed, sql)
        note = None
        if analyze and nparams:
            note = NOT_ANALYZED_PLACEHOLDERS
            analyze = False
        commands: list[str] = []
        try:
            why = self.analyze_refusal(parsed) if analyze else self.function_refusal(parsed, False)
            if why:
                return refused(statement, why, sql)
            if analyze:
                method = "analyze"
                commands.append(f"EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON) {sql}")
                plan = self._run(commands)
            elif nparams == 0:
                method = "explain_json"
                commands.append(f"EXPLAIN (SETTINGS, FORMAT JSON) {sql}")
                plan = self._run(commands)
            else:
                method = "prepare_force_generic"
                plan = self._prepare_and_explain(sql, nparams, commands)
        except _NotSingle:
            why = ("refused", "the EXPLAIN built around the statement is not one statement")
            return refused(statement, why, sql)
        except psycopg.Error as exc:
            if self.conn.closed:
                raise self.connection_error(f"the connection was lost ({exc})") from None
            code = _PG_REASONS.get(exc.sqlstate or "", "error")
            primary = short_reason(exc.diag.message_primary or str(exc))
            if code == "timeout":
                primary += f" (statement_timeout = {self.statement_timeout_ms} ms)"
            elif code == "lock_timeout":
                primary += f" (lock_timeout = {self.lock_timeout_ms} ms)"
            log.debug("%s: %s", statement.key, primary)
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=sql,
                reason=primary,
                reason_code=code,
                note=note,
                commands=tuple(commands),
            )
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=sql,
            method=method,
            plan=plan,
            note=note,
            commands=tuple(commands),
        )

    def _run(self, commands: Sequence[str], setup: Sequence[str] = ()) -> Any:
        """Run ``setup`` then ``commands`` in one read-only transaction; the last command's
        first cell, parsed, is the plan."""
        for command in commands:
            if not _single_command(command, ("ExplainStmt", "PrepareStmt")):
                raise _NotSingle(command)
        with self.conn.cursor() as cur:
            try:
                self._begin(cur)
                for command in (*setup, *commands):
                    self._send(cur, command)
                value = cur.fetchone()[0]
            finally:
                self.rollback()
        return json.loads(value) if isinstance(value, str) else value

    def _prepare_and_explain(self, sql: str, nparams: int, commands: list[str]) -> Any:
        import psycopg

        types = ["unknown"] * nparams
        nulls = ", ".join(["NULL"] * nparams)
        explain = f"EXPLAIN (SETTINGS, FORMAT JSON) EXECUTE {_PREPARED_NAME}({nulls})"
        for _attempt in range(nparams + 1):
            declared = f"({', '.join(types)})" if "text" in types else ""
            prepare = f"PREPARE {_PREPARED_NAME}{declared} AS {sql}"
            commands[:] = [
                "SET LOCAL plan_cache_mode = force_generic_plan",
                prepare,
                explain,
                "DEALLOCATE ALL",
            ]
            try:
                return self._run(commands[1:3], setup=commands[:1])
            except psycopg.errors.IndeterminateDatatype as exc:
                # "could not determine data type of parameter $2": say it is text.
                match = _UNTYPED_PARAM.search(exc.diag.message_primary or "")
                if not match or types[int(match.group(1)) - 1] == "text":
                    raise
                types[int(match.group(1)) - 1] = "text"
            finally:
                # Prepared statements belong to the session and survive ROLLBACK.
                # ALL cannot fail when PREPARE did, and psycopg's own automatic
                # prepares are switched off in open(), so ours is the only one.
                if not self.conn.closed:
                    self.conn.execute("DEALLOCATE ALL")
        raise AssertionError("unreachable: every parameter was declared text")
