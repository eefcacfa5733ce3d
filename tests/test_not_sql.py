"""Statements of key-value and document stores are commands, not SQL.

Redis's instrumentation records ``GET ?``; read as SQL it became ``get AS $1`` (a
column alias), and an N+1 over a cache read "the same query" with a SQL fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import n_plus_one
from correlate.fingerprint import fingerprint, fingerprint_many

from .builders import RunBuilder
from .helpers.produce import produce

ROOT = Path(__file__).resolve().parents[1]
PRODUCER = Path(__file__).parent / "helpers" / "redis_producer.py"


@pytest.mark.parametrize(
    ("text", "system", "normalized", "operation"),
    [
        ("GET ?", "redis", "get $1", "GET"),
        ("SET ? ?", "Redis", "set $1 $2", "SET"),
        ("MGET ? ? ?", "valkey", "mget $1", "MGET"),
        ("find orders", "mongodb", "find orders", "FIND"),
    ],
)
def test_commands_are_never_given_to_a_sql_parser(
    text: str, system: str, normalized: str, operation: str
) -> None:
    f = fingerprint(text, system)
    assert (f.normalized, f.method, f.operation, f.tables) == (
        normalized,
        "fallback",
        operation,
        (),
    )
    # the same text from a SQL database is still SQL's to parse
    assert fingerprint("SELECT * FROM t WHERE id = ?", "mysql").method == "sqlglot"


def test_one_command_shape_is_one_fingerprint_however_many_keys() -> None:
    found = fingerprint_many([("GET ?", "redis"), ("GET  ?", "redis"), ("GET ? ", "redis")])
    assert len({f.id for f in found.values()}) == 1


def test_parser_warnings_never_reach_the_terminal() -> None:
    # sqlglot reads Java's `call next value for hibernate_sequence` (perf-sentinel's fixture)
    # as an opaque command and logs a warning; with no logging configured Python printed it
    # in the middle of correlate's output. A process of its own: pytest captures logging.
    code = (
        "from correlate.fingerprint import fingerprint\n"
        "print(fingerprint('call next value for hibernate_sequence', 'h2').method)\n"
        "print(fingerprint('call next value for hibernate_sequence', None).method)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sqlglot", "sqlglot"]
    assert done.stderr == ""


@pytest.mark.redis
def test_a_cache_read_per_item_is_an_n_plus_one_of_redis_commands(
    redis_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.redis")
    out = tmp_path / "spans.jsonl"
    produce(PRODUCER, redis_url, out, "10")
    with correlate.open_store(":memory:") as store:
        store.ingest([out], run="r")
        result = correlate.analyze("r", store=store)
        statements = store.con.execute(
            "SELECT DISTINCT normalized, method FROM statements WHERE db_system = 'redis'"
        ).fetchall()
    assert ("get $1", "fallback") in statements
    (f,) = [f for f in result.findings if f.kind == "n_plus_one"]
    assert f.route == "/products"
    assert f.evidence["calls_per_request"] == 12
    assert "redis command GET" in f.title
    assert "MGET" in f.suggestion and "IN (" not in f.suggestion


@pytest.mark.parametrize("system", ["Redis", " redis "])
def test_an_n_plus_one_of_commands_is_told_whatever_the_system_is_spelled(system: str) -> None:
    # fingerprinting reads db.system trimmed and in any case; the finding must too
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 80, "/products")
        for n in range(12):
            at = start + 1 + n * 5
            b.span(trace, at, at + 4, parent=r, kind="CLIENT", name="GET", db=system, sql="GET ?")
    with open_run(b.build(), "r") as run:
        (f,) = n_plus_one(run)
    assert "the same redis command GET 12×" in f.title
    assert "MGET" in f.suggestion and "IN (" not in f.suggestion


def test_the_values_of_a_document_command_are_placeholders_its_collection_is_not() -> None:
    # Java's and Node's MongoDB instrumentations record the command as JSON, with the
    # values themselves when sanitising is off: a fingerprint per e-mail address found no
    # N+1 and put the addresses in the report
    alice, bob, tags, tag = (
        fingerprint(text, "mongodb")
        for text in (
            '{"find": "orders", "filter": {"email": "alice@example.com"}}',
            '{"find": "orders", "filter": {"email": "bob@example.com", "n": 3}}',
            '{"find": "orders", "filter": {"tag": {"$in": ["a", "b", "c"]}}}',
            '{"find": "orders", "filter": {"tag": {"$in": ["a"]}}}',
        )
    )
    assert alice.normalized == "{ find : orders, filter : { email : $1 } }"
    assert bob.normalized == "{ find : orders, filter : { email : $1, n : $2 } }"
    assert "example.com" not in alice.normalized + bob.normalized
    assert tags.id == tag.id and tag.normalized.endswith('{ "$in" : [$1] } } }')
    other = fingerprint('{"find": "users", "filter": {"email": "alice@example.com"}}', "mongodb")
    assert other.id != alice.id and "users" in other.normalized


@pytest.mark.parametrize("statement", ["KEYS ?", None])
def test_a_slow_command_is_never_sent_to_plan_capture(statement: str | None) -> None:
    # `correlate plans capture` explains SQL only: for a slow Redis command (its text
    # recorded or not) the finding and the run's gaps must not tell the reader to capture
    # its plan
    b = RunBuilder()
    for i in range(20):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 100, "/products")
        b.span(
            trace, start + 1, start + 91, parent=r, kind="CLIENT", name="KEYS", db="redis",
            sql=statement,
        )  # fmt: skip
    with correlate.open_store(":memory:") as store:
        result = correlate.analyze("r", store=b.build(store))
    (f,) = result.findings
    assert (f.kind, f.title) == (
        "slow_query",
        "Slow query in /products: the redis command KEYS, median 90.0 ms per call",
    )
    assert "plan" not in f.suggestion and "EXPLAIN" not in f.suggestion
    assert "SLOWLOG" in f.suggestion
    assert not [gap for gap in result.gaps if "plans capture" in gap]


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("GET user:1", "redundant_calls"),  # the very same key: a redundant read
        ("HGETALL session:abc", "redundant_calls"),  # `:abc` is a key, not a bind variable
        ('{"find": "users", "filter": {"_id": 7}}', "redundant_calls"),
        ("GET ?", "n_plus_one"),  # keys not recorded: one per item, as far as is known
        ("INCR hits:1", "n_plus_one"),  # a write is never redundant
    ],
)
def test_the_same_command_with_the_same_key_is_a_redundant_call(statement: str, kind: str) -> None:
    # As for SQL's `SELECT … WHERE id = 1` six times: one read to keep, not an N+1 to batch
    b = RunBuilder()
    system = "mongodb" if statement.startswith("{") else "redis"
    for i in range(20):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 100, "/products")
        for n in range(6):
            at = start + 1 + n * 10
            b.span(trace, at, at + 8, parent=r, kind="CLIENT", db=system, sql=statement)
    with open_run(b.build(), "r") as run:
        kinds = [f.kind for f in run.findings()]
    assert kind in kinds
    assert {"n_plus_one", "redundant_calls"} - {kind} & set(kinds) == set()


def test_an_n_plus_one_of_commands_without_their_text_is_still_of_commands() -> None:
    # with statement capture off (or an instrumentation that records none) the span's
    # system and name stand for the call: still a Redis GET, not "the same query"
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 80, "/products")
        for n in range(12):
            at = start + 1 + n * 5
            b.span(trace, at, at + 4, parent=r, kind="CLIENT", name="GET", db="redis")
    with open_run(b.build(), "r") as run:
        (f,) = n_plus_one(run)
    assert "the same redis command GET 12×" in f.title
    assert "MGET" in f.suggestion and "IN (" not in f.suggestion


BATCH_PRODUCER = Path(__file__).parent / "helpers" / "redis_batch_producer.py"


@pytest.mark.redis
def test_batched_commands_of_any_size_are_one_shape_each(redis_url: str, tmp_path: Path) -> None:
    # a cart of 1 to 6 items: MGET ? … and DEL ? … of as many keys, a pipeline of as many
    # GETs and a SET; what varies with the cart is data, as an IN list's length is (the
    # instrumentation named the pipeline's span "GET GET GET SET", its operation was GET)
    out = tmp_path / "spans.jsonl"
    produce(BATCH_PRODUCER, redis_url, out, "12")
    with correlate.open_store(":memory:") as store:
        store.ingest([out], run="r")
        spans = store.con.execute(
            "SELECT count(DISTINCT db_statement) FROM spans WHERE db_system = 'redis'"
        ).fetchone()
        shapes = store.con.execute(
            "SELECT DISTINCT operation, normalized FROM db_spans ORDER BY operation"
        ).fetchall()
    assert spans is not None and spans[0] >= 12, "the texts differ with the cart's size"
    assert shapes == [
        ("DEL", "del $1"),
        ("MGET", "mget $1"),
        ("MSET", "mset $1 $2"),  # the cart's keys set before each request
        ("PIPELINE GET, SET", "pipeline get $1; set $2 $3"),
    ]


@pytest.mark.parametrize(
    ("texts", "normalized", "operation"),
    [
        (["MGET ?", "MGET ? ?", "MGET ? ? ? ?"], "mget $1", "MGET"),
        (["DEL ?", "DEL ? ? ?"], "del $1", "DEL"),
        (["HMGET ? ?", "HMGET ? ? ? ?"], "hmget $1 $2", "HMGET"),
        (["HSET ? ? ?", "HSET ? ? ? ? ?"], "hset $1 $2 $3", "HSET"),
        (["MSET ? ?", "MSET ? ? ? ? ? ?"], "mset $1 $2", "MSET"),
        # unsanitised keys (sanitize_query off, older releases): one key prefix is one shape
        (["MGET user:1 user:2", "MGET user:7"], "mget user : $1", "MGET"),
        (["GET ?\nSET ? ?", "GET ?\nGET ?\nGET ?\nSET ? ?"], "pipeline get $1; set $2 $3",
         "PIPELINE GET, SET"),
        (["MGET ? ?\nINCRBY ? ?", "MGET ?\nINCRBY ? ?"], "pipeline mget $1; incrby $2 $3",
         "PIPELINE MGET, INCRBY"),
        # a loop that queues two commands per item: the pair repeats, not one command
        (["GET ?\nEXPIRE ? ?", "GET ?\nEXPIRE ? ?\nGET ?\nEXPIRE ? ?\nGET ?\nEXPIRE ? ?"],
         "pipeline get $1; expire $2 $3", "PIPELINE GET, EXPIRE"),
        (["GET ?\nGET ?\nEXPIRE ? ?\nGET ?\nEXPIRE ? ?"], "pipeline get $1; expire $2 $3",
         "PIPELINE GET, EXPIRE"),
    ],
)  # fmt: skip
def test_variable_arity_commands_and_pipelines_fold_to_one_fingerprint(
    texts: list[str], normalized: str, operation: str
) -> None:
    found = [fingerprint(text, "redis") for text in texts]
    assert {(f.normalized, f.operation) for f in found} == {(normalized, operation)}
    again = fingerprint(normalized, "redis")
    assert (again.id, again.operation) == (found[0].id, operation)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SET ? ?", "SET ? ? ? ?"),  # an expiry's options are the command's shape
        ("MGET user:1 user:2", "MGET user:1 order:2"),  # another key prefix
        ("GET ?\nSET ? ?", "SET ? ?\nGET ?"),  # another order
        ("GET ?\nGET ?", "GET ?"),  # a pipeline is one round trip, a GET is one per key
        ("GET ?\nSET ? ?\nDEL ?", "GET ?\nSET ? ?\nGET ?\nDEL ?"),  # no repeating cycle
        ("GET ?\nSET ? ?", "GET ?\nSET ? ?\nGET ?"),  # a read back is no second turn
    ],
)
def test_commands_of_another_shape_keep_their_own_fingerprint(a: str, b: str) -> None:
    assert fingerprint(a, "redis").id != fingerprint(b, "redis").id


@pytest.mark.parametrize("text", ["PIPELINE", "pipeline  ", "PIPELINE ;"])
def test_a_command_named_pipeline_is_fingerprinted_not_a_crash(text: str) -> None:
    found = fingerprint(text, "redis")
    assert found.operation == "PIPELINE"


def test_a_long_pipeline_names_its_first_commands_and_counts_the_rest() -> None:
    names = ["GET", "SET", "DEL", "INCR", "EXPIRE", "TTL", "HGET", "LPOP", "SADD", "ZADD"]
    found = fingerprint("\n".join(f"{name} ?" for name in names), "redis")
    assert found.operation == "PIPELINE GET, SET, DEL, INCR, EXPIRE, TTL, HGET, LPOP and 2 more"
    assert found.normalized.endswith("sadd $9; zadd $10")
