"""MariaDB/MySQL capture: ``EXPLAIN FORMAT=JSON`` with a real value for each placeholder,
and a statement text that the server can only take as one statement.

MariaDB/MySQL have no generic plans, so each placeholder gets a literal. A NULL would
be wrong (``col = NULL`` is never true and the plan says "Impossible WHERE"), and so is
an arbitrary value: for a primary-key or unique lookup the optimizer reads the row while
planning. So, for ``col <op> %s``, ``col IN (%s, …)`` and ``col BETWEEN %s AND %s``,
the column is looked up in ``information_schema.COLUMNS`` (of the current database,
preferring a table the statement names) and one existing non-NULL value of it is read
and used as the literal; without one, a default of its type. A ``LIMIT``/``OFFSET``
placeholder gets ``10``/``0``; any other ``'0'``. The plan is the plan for *that* value.
The value is the database's, not the trace's, and may be a secret (an API key, a token):
it is shown as ``***`` in the explained statement, the commands, the plan and any error
capture returns, so it is never stored or printed.

What keeps the server safe from the text:

1. The connection never asks for the multi-statements capability (``CLIENT_MULTI_STATEMENTS``
   is checked off after connecting), so the server parses each command as one statement
   and a ``;`` followed by more is a syntax error, never a second statement.
2. Before that, the text is read with MySQL's own quoting and comment rules (backslash
   escapes, ``#`` and ``-- `` comments, non-nesting ``/* */``): a ``;`` outside quotes and
   comments, an unclosed quote or comment, or an executable comment (``/*! … */``,
   ``/*M! … */``, which the server runs as SQL) refuses the text. The session's
   ``sql_mode`` loses ``ANSI_QUOTES`` and ``NO_BACKSLASH_ESCAPES``, so the server quotes
   as the lexer does.
3. Each statement runs in ``START TRANSACTION READ ONLY``, rolled back, under
   ``max_statement_time`` (MySQL: ``max_execution_time``) and ``lock_wait_timeout``.
   MariaDB refuses even ``EXPLAIN UPDATE`` in a read-only transaction, so a plain EXPLAIN
   of INSERT/UPDATE/DELETE uses a read-write transaction that is rolled back: safe
   because point 1 makes it one ``EXPLAIN`` statement, which executes nothing.
4. Every function the statement calls must be on :data:`ALLOWED_FUNCTIONS`, even for a
   plain EXPLAIN: the server materialises derived tables while explaining, so
   ``EXPLAIN SELECT * FROM (SELECT GET_LOCK('x', 0)) t`` would take the lock. ``SLEEP``,
   ``GET_LOCK``, ``BENCHMARK``, ``LOAD_FILE``, stored functions and anything unknown are
   refused by name. Calls are found with comments skipped (``SLEEP/**/(1)`` is a call) and
   a qualified name is a stored function; sequence values (``NEXT VALUE FOR``),
   optimizer hints (``/*+ … */``) and spaces MySQL does not take for spaces (U+00A0)
   are refused too. ``analyze=True`` (``ANALYZE FORMAT=JSON``, MySQL ``EXPLAIN ANALYZE``)
   also refuses ``INTO``, ``FOR UPDATE``/``SHARE`` and ``LOCK IN SHARE MODE``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

from correlate.dialects.mysql import MYSQL
from correlate.fingerprint.placeholders import Placeholders, split_placeholders
from correlate.plans.capture.common import (
    NOT_ANALYZED_PLACEHOLDERS,
    CapturedPlan,
    ServerFacts,
    Session,
    Statement,
    refusal,
    refused,
    relation_sizes,
    short_reason,
    writes,
)
from correlate.redact import MASK

#: MariaDB/MySQL variables recorded when the server has them.
MYSQL_SETTINGS = (
    "optimizer_switch",
    "optimizer_use_condition_selectivity",
    "optimizer_search_depth",
    "join_buffer_size",
    "join_cache_level",
    "sort_buffer_size",
    "tmp_table_size",
    "eq_range_index_dive_limit",
)

#: Functions a statement sent to MariaDB/MySQL may call: deterministic built-ins that
#: read nothing outside the statement's own rows and wait for nothing.
ALLOWED_FUNCTIONS = frozenset(
    [
        "against",
        "any_value",
        "ascii",
        "bit_count",
        "char",
        "crc32",
        "database",
        "format",
        "json_arrayagg",
        "json_objectagg",
        "last_insert_id",
        "match",
        "timestampadd",
        "to_days",
        "weekofyear",
        "abs",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "cast",
        "ceil",
        "ceiling",
        "char_length",
        "character_length",
        "coalesce",
        "concat",
        "concat_ws",
        "convert",
        "count",
        "cume_dist",
        "curdate",
        "current_date",
        "current_time",
        "current_timestamp",
        "curtime",
        "date",
        "date_add",
        "date_format",
        "date_sub",
        "datediff",
        "day",
        "dayofmonth",
        "dayofweek",
        "dayofyear",
        "dense_rank",
        "exp",
        "extract",
        "field",
        "find_in_set",
        "first_value",
        "floor",
        "from_unixtime",
        "greatest",
        "group_concat",
        "hex",
        "hour",
        "if",
        "ifnull",
        "instr",
        "json_array",
        "json_contains",
        "json_extract",
        "json_length",
        "json_object",
        "json_unquote",
        "lag",
        "last_value",
        "lcase",
        "lead",
        "least",
        "left",
        "length",
        "ln",
        "locate",
        "log",
        "log10",
        "lower",
        "lpad",
        "ltrim",
        "max",
        "md5",
        "mid",
        "min",
        "minute",
        "mod",
        "month",
        "now",
        "nth_value",
        "ntile",
        "nullif",
        "percent_rank",
        "pow",
        "power",
        "quarter",
        "rank",
        "repeat",
        "replace",
        "reverse",
        "right",
        "round",
        "row_number",
        "rpad",
        "rtrim",
        "second",
        "sha1",
        "sha2",
        "sign",
        "sqrt",
        "std",
        "stddev",
        "str_to_date",
        "strcmp",
        "substr",
        "substring",
        "substring_index",
        "sum",
        "time",
        "timestamp",
        "timestampdiff",
        "trim",
        "truncate",
        "ucase",
        "unhex",
        "unix_timestamp",
        "upper",
        "utc_date",
        "utc_timestamp",
        "var_pop",
        "var_samp",
        "variance",
        "week",
        "weekday",
        "year",
        "yearweek",
    ]
)
# Words a ``(`` may follow without being a function call.
_NOT_CALLS = frozenset(
    [
        "all",
        "and",
        "any",
        "as",
        "between",
        "by",
        "case",
        "distinct",
        "else",
        "exists",
        "from",
        "having",
        "in",
        "index",
        "into",
        "is",
        "join",
        "key",
        "lateral",
        "like",
        "not",
        "on",
        "or",
        "over",
        "partition",
        "primary",
        "select",
        "some",
        "then",
        "union",
        "using",
        "values",
        "when",
        "where",
        "with",
        "row",
    ]
)
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
# MariaDB sequences: NEXT/PREVIOUS VALUE FOR s, and s.nextval in Oracle mode.
_SEQUENCE = re.compile(r"\b(?:NEXT|PREVIOUS)\s+VALUE\s+FOR\b|\b(?:NEXTVAL|CURRVAL|LASTVAL)\b")
_LOCKING = re.compile(r"\b(?:FOR\s+(?:UPDATE|SHARE)|LOCK\s+IN\s+SHARE\s+MODE)\b", re.I)
#: sql_mode flags that change how the server reads quotes; removed for the session.
_LEXICAL_MODES = frozenset({"ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI"})
_MULTI_STATEMENTS = 1 << 16  # CLIENT_MULTI_STATEMENTS


def _calls(split: Placeholders) -> Iterator[str]:
    """Names the statement calls as functions: a word or quoted name before ``(``, except
    keywords and the table of ``INSERT [INTO] t (cols)``.

    Comments are skipped as the server skips them (``SLEEP/**/(1)`` and ``SLEEP#x\n(1)``
    are calls), and a qualified name (``db.concat(1)``) is yielded whole: the server
    takes it for a stored function, whatever built-in it is named after.
    """
    tokens = [t for t in split.tokens if t.kind != "comment"]
    for i, tok in enumerate(tokens[:-1]):
        if tokens[i + 1].text != "(" or tok.kind not in ("word", "qident"):
            continue
        if tok.kind == "word" and tok.text.lower() in _NOT_CALLS:
            continue
        j = i - 1
        while j >= 1 and tokens[j].text == "." and tokens[j - 1].kind in ("word", "qident"):
            j -= 2  # back over schema.table
        if j >= 0 and tokens[j].text.upper() in ("INTO", "INSERT", "REPLACE", "TABLE"):
            continue
        yield "".join(t.text for t in tokens[j + 1 : i + 1])


def _odd_space(text: str, split: Placeholders) -> bool:
    """True when something between the tokens of ``text`` is not one of MySQL's spaces:
    the lexer drops every Unicode space, while MariaDB reads ``concat\u00a0`` as one name."""
    cursor = 0
    for tok in split.tokens:
        start = text.find(tok.text, cursor)
        if text[cursor:start].strip(_MYSQL_SPACES):
            return True
        cursor = start + len(tok.text)
    return bool(text[cursor:].strip(_MYSQL_SPACES))


def statement_refusal(
    split: Placeholders, analyze: bool, text: str | None = None
) -> tuple[str, str] | None:
    """MySQL-specific reasons not to send a statement (after :func:`refusal`).

    The function allow-list applies to plain EXPLAIN too: MariaDB and MySQL materialise
    derived tables while explaining (``EXPLAIN SELECT * FROM (SELECT GET_LOCK('x', 0)) t``
    takes the lock), so explaining is not enough to keep a call from running.
    """
    for tok in split.tokens:
        if tok.kind == "comment" and _EXECUTABLE_COMMENT.match(tok.text):
            return "refused", (
                "the text holds an executable comment (/*! … */), which the server runs as SQL"
            )
        if tok.kind == "comment" and tok.text.startswith("/*+"):
            return "refused", (
                "the text holds an optimizer hint (/*+ … */), which can lift the statement "
                "timeout (MAX_EXECUTION_TIME, SET_VAR)"
            )
    if text is not None and _odd_space(text, split):
        return "refused", (
            "the text holds a character that reads as a space here but as part of a name to "
            "the server (such as U+00A0), so the server could call a function the check "
            "did not see"
        )
    if _SEQUENCE.search(" ".join(split.words)):
        return "refused", (
            "the statement takes a value from a sequence (NEXT VALUE FOR, NEXTVAL), which "
            "the server does while explaining and no rollback undoes"
        )
    for name in _calls(split):
        if name.lower() not in ALLOWED_FUNCTIONS:
            return "refused", (
                f"the statement calls {name}(), which is not on the list of functions "
                "capture lets the server run (MariaDB/MySQL execute derived tables while "
                "explaining them)"
            )
    if not analyze:
        return None
    if "INTO" in split.words:
        return "refused", "analyze runs the statement, and SELECT … INTO writes"
    if _LOCKING.search(" ".join(split.words)):
        return "refused", "analyze runs the statement, and FOR UPDATE/SHARE takes locks"
    return None


_MYSQL_REASONS = {
    1064: "syntax",
    1146: "missing_object",  # no such table
    1054: "missing_object",  # unknown column
    1049: "missing_object",  # unknown database
    1305: "missing_object",  # function does not exist
    1969: "timeout",  # MariaDB max_statement_time
    3024: "timeout",  # MySQL max_execution_time
    1205: "lock_timeout",  # innodb_lock_wait_timeout
    1792: "refused",  # read-only transaction
}
_COMPARED = re.compile(
    r"(?:[`\"]?(?P<qual>\w+)[`\"]?\s*\.\s*)?[`\"]?(?P<col>\w+)[`\"]?\s*"
    r"(?:<=>|<>|!=|<=|>=|=|<|>|\bNOT\s+LIKE\b|\bLIKE\b|\b(?:NOT\s+)?IN\s*\((?:[^()]*,)?"
    r"|\bBETWEEN\b(?:\s*[^\s()]+\s+AND\b)?)\s*$",
    re.I,
)
_MYSQL_SPACES = " \t\n\r\v\f"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LIMIT = re.compile(r"\b(LIMIT|OFFSET)\s*$|\bLIMIT\s*\S+\s*,\s*$", re.I)
_NUMERIC_TYPES = frozenset(
    [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
        "decimal",
        "numeric",
        "float",
        "double",
        "real",
        "bit",
        "year",
    ]
)
_TYPE_DEFAULTS = {"date": "'2000-01-01'", "datetime": "'2000-01-01 00:00:00'", "time": "'00:00:00'"}
_TYPE_DEFAULTS["timestamp"] = _TYPE_DEFAULTS["datetime"]


def _tidy(pieces: list[str]) -> str:
    return "".join(pieces).strip().rstrip(";").rstrip()


def _masked(value: Any, hidden: list[str]) -> Any:
    """``value`` (text, or a JSON document) with each of ``hidden`` shown as ``***``.

    A form is masked where no word character touches it, so ``12`` is masked in
    ``t.id = 12`` but not in ``t12``; a string that is nothing but a number is left alone
    (``"key_length": "4"`` is a length, whatever value was sampled).
    """
    if not hidden:
        return value
    if isinstance(value, dict):
        return {k: _masked(v, hidden) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, hidden) for v in value]
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        return value
    for form in hidden:
        value = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", MASK, value)
    return value


class MySQLSession(Session):
    dialect = "mysql"
    password_sources = "in the URL or MYSQL_PWD"
    default_port = 3306

    def connect_args(self) -> dict[str, Any]:
        # client_flag 0: pymysql adds its usual capabilities, never MULTI_STATEMENTS.
        args: dict[str, Any] = {"connect_timeout": 10, "client_flag": 0}
        if self.url.password is None and os.environ.get("MYSQL_PWD"):
            # The mysql client's convention; pymysql does not read it itself.
            args["password"] = os.environ["MYSQL_PWD"]
        return args

    def secrets(self) -> list[str]:
        secret = os.environ.get("MYSQL_PWD")
        return [*super().secrets(), *([secret] if secret else [])]

    def open(self) -> None:
        super().open()
        conn = self.conn
        if conn.client_flag & _MULTI_STATEMENTS:
            raise self.connection_error(
                "the driver asked for the multi-statements capability, which capture refuses"
            )
        conn.autocommit(True)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@SESSION.sql_mode")
            version, sql_mode = cur.fetchone()
            self.version = str(version)
            self.mariadb = "mariadb" in self.version.lower()
            modes = [m for m in str(sql_mode).split(",") if m and m.upper() not in _LEXICAL_MODES]
            cur.execute("SET SESSION sql_mode = %s", (",".join(modes),))
            seconds = self.statement_timeout_ms / 1000
            if self.mariadb:
                cur.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                # MySQL's limit covers SELECT only; DML is never executed here anyway.
                cur.execute(f"SET SESSION max_execution_time = {int(self.statement_timeout_ms)}")
            lock_seconds = max(1, math.ceil(self.lock_timeout_ms / 1000))
            cur.execute(f"SET SESSION lock_wait_timeout = {lock_seconds}")
            cur.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_seconds}")
        self._literals: dict[tuple[str, str | None], str] = {}
        #: literal of each value read from the database -> the texts that show it
        self._sampled: dict[str, tuple[str, ...]] = {}

    def rollback(self) -> None:
        if self.conn.open:
            self.conn.rollback()

    def facts(self) -> ServerFacts:
        names = ", ".join(f"'{name}'" for name in MYSQL_SETTINGS)
        with self.conn.cursor() as cur:
            cur.execute(f"SHOW SESSION VARIABLES WHERE Variable_name IN ({names})")
            settings = {str(k): str(v) for k, v in cur.fetchall()}
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_ROWS IS NOT NULL AND TABLE_SCHEMA NOT IN "
                "('mysql', 'information_schema', 'performance_schema', 'sys')"
            )
            sizes = relation_sizes(cur.fetchall())
        return ServerFacts("mariadb" if self.mariadb else "mysql", self.version, settings, sizes)

    def explain(self, statement: Statement, analyze: bool) -> CapturedPlan:
        import pymysql

        split = split_placeholders(statement.text, "mysql")
        why = refusal(statement.text, split, analyze) or statement_refusal(
            split, analyze, statement.text
        )
        if why:
            return refused(statement, why)
        note = None
        if analyze and split.slots:
            note = NOT_ANALYZED_PLACEHOLDERS
            analyze = False
        # MariaDB refuses EXPLAIN of DML inside a READ ONLY transaction; a plain
        # EXPLAIN executes nothing, and the transaction is rolled back regardless.
        begin = "START TRANSACTION" if writes(split) else "START TRANSACTION READ ONLY"
        commands: list[str] = [begin]
        sql = ""
        try:
            with self.conn.cursor() as cur:
                try:
                    cur.execute(begin)
                    sql, shown, hidden = self._with_literals(cur, split)
                    if analyze:
                        method = "analyze"
                        command = (
                            f"ANALYZE FORMAT=JSON {sql}"
                            if self.mariadb
                            else f"EXPLAIN ANALYZE {sql}"
                        )
                    else:
                        method = "explain_json"
                        command = f"EXPLAIN FORMAT=JSON {sql}"
                    commands.append(command)
                    cur.execute(command)
                    value = cur.fetchone()[0]
                finally:
                    commands.append("ROLLBACK")
                    self.rollback()
        except pymysql.MySQLError as exc:
            if not self.conn.open:
                raise self.connection_error(f"the connection was lost ({exc})") from None
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            message = short_reason(str(exc.args[1]) if len(exc.args) > 1 else str(exc))
            hidden = self._hidden_in(sql)
            return CapturedPlan(
                statement.key,
                statement.text,
                sql=_masked(sql, hidden) or None,
                reason=_masked(message, hidden),
                reason_code=_MYSQL_REASONS.get(errno, "error"),
                note=note,
                commands=tuple(_masked(c, hidden) for c in commands),
            )
        try:
            # MySQL's EXPLAIN ANALYZE is TREE text, not JSON; keep it as text.
            plan = json.loads(value)
        except (TypeError, ValueError):
            plan = value
        return CapturedPlan(
            statement.key,
            statement.text,
            sql=shown,
            method=method,
            plan=_masked(plan, hidden),
            note=note,
            commands=tuple(_masked(c, hidden) for c in commands),
        )

    def _with_literals(self, cur: Any, split: Placeholders) -> tuple[str, str, list[str]]:
        """The statement with a literal for each placeholder; the same with each value
        read from the database shown as ``***``; and the texts that must be masked."""
        out: list[str] = []
        shown: list[str] = []
        hidden: list[str] = []
        words = {w.lower() for w in split.words}
        for piece in split.pieces:
            if isinstance(piece, str):
                out.append(piece)
                shown.append(piece)
                continue
            literal = self._literal(cur, "".join(out), words)
            out.append(literal)
            forms = self._sampled.get(literal)
            shown.append(MASK if forms else literal)
            hidden.extend(forms or ())
        return _tidy(out), _tidy(shown), sorted(set(hidden), key=len, reverse=True)

    def _hidden_in(self, sql: str) -> list[str]:
        """The forms of every sampled value whose literal ``sql`` holds."""
        forms = {f for literal, fs in self._sampled.items() if literal in sql for f in fs}
        return sorted(forms, key=len, reverse=True)

    def _literal(self, cur: Any, before: str, words: set[str]) -> str:
        """A stand-in value for the placeholder that follows ``before``."""
        limit = _LIMIT.search(before[-200:])
        if limit:
            return "0" if (limit.group(1) or "").upper() == "OFFSET" else "10"
        compared = _COMPARED.search(before[-400:])
        if not compared:
            return "'0'"
        column, qualifier = compared.group("col"), compared.group("qual")
        cache_key = (column.lower(), qualifier.lower() if qualifier else None)
        if cache_key not in self._literals:
            self._literals[cache_key] = self._sample(cur, column, qualifier, words)
        return self._literals[cache_key]

    def _sample(self, cur: Any, column: str, qualifier: str | None, words: set[str]) -> str:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = %s ORDER BY TABLE_NAME",
            (column,),
        )
        candidates = [(str(t), str(c), str(d).lower()) for t, c, d in cur.fetchall()]

        def rank(candidate: tuple[str, str, str]) -> int:
            table = candidate[0].lower()
            if qualifier and table == qualifier.lower():
                return 0
            return 1 if table in words else 2

        candidates = sorted((c for c in candidates if rank(c) < 2), key=rank)
        if not candidates:
            return "'0'"
        table, real_column, data_type = candidates[0]
        cur.execute(
            f"SELECT {MYSQL.quote_identifier(real_column)} FROM {MYSQL.quote_identifier(table)} "
            f"WHERE {MYSQL.quote_identifier(real_column)} IS NOT NULL LIMIT 1"
        )
        row = cur.fetchone()
        if row is not None:
            literal = str(self.conn.escape(row[0]))
            # As sent, as the server prints it in a plan ('…', without _binary), as text.
            forms = {literal, literal[literal.find("'") :] if "'" in literal else literal}
            if not isinstance(row[0], (str, bytes)):
                forms.add(str(row[0]))
            self._sampled[literal] = tuple(forms)
            return literal
        if data_type in _NUMERIC_TYPES:
            return "0"
        return _TYPE_DEFAULTS.get(data_type, "''")
