"""A worker's processing of a message (a CONSUMER span) is a request of its own.

Messaging instrumentations (pika, kafka-python, Celery, kafkajs, Java's Kafka client)
start a CONSUMER span for each message processed, in the publisher's trace: its
queries happen after the publishing request may have ended, so they are the worker's
time, never the publisher's. And a call a request makes after it ended (fire-and-forget)
costs that request nothing: no detector may count negative or borrowed time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import n_plus_one

from .builders import RunBuilder
from .helpers.produce import produce

WORKER = Path(__file__).parent / "helpers" / "pika_worker.py"
CELERY = Path(__file__).parent / "helpers" / "celery_worker.py"


def _publish_then_process(b: RunBuilder, i: int, *, consumer_kind: str = "CONSUMER") -> None:
    """POST /orders publishes a message and answers in 5 ms; the worker takes it 20 ms
    later and loads the order's 12 items one by one."""
    trace, start = f"t{i}", i * 1000.0
    r = b.request(trace, start, start + 5, "/orders")
    send = b.span(trace, start + 1, start + 2, parent=r, kind="PRODUCER", name="orders send")
    c = b.span(
        trace,
        start + 25,
        start + 25 + 12 * 3 + 2,
        parent=send,
        kind=consumer_kind,
        name="orders process",
        service="worker",
    )
    for n in range(12):
        at = start + 26 + n * 3
        b.query(trace, c, at, at + 2, f"SELECT * FROM items WHERE id = {n}")


def test_a_message_processed_is_a_request_of_the_worker() -> None:
    b = RunBuilder()
    for i in range(10):
        _publish_then_process(b, i)
    store = b.build()
    with open_run(store, "r") as run:
        routes = {r["route"]: r for r in run.routes().to_dict("records")}
        (f,) = n_plus_one(run)
    assert set(routes) == {"svc /orders", "worker orders process"}
    # the publisher answered in 5 ms: none of the worker's queries is its time, its
    # publishing is its downstream time
    publisher, worker = routes["svc /orders"], routes["worker orders process"]
    assert (publisher["db_calls"], publisher["db_ms"]) == (0, 0)
    assert publisher["downstream_ms"] == pytest.approx(1)
    assert (worker["requests"], worker["db_calls"]) == (10, 12)
    assert worker["db_ms"] == pytest.approx(24)
    assert f.route == "worker orders process"
    assert f.evidence["calls_per_request"] == 12
    assert f.evidence["union_ms_per_request"] == pytest.approx(24)
    assert f.impact_ms > 0


def test_fire_and_forget_calls_after_the_request_cost_it_nothing() -> None:
    # Before CONSUMER spans were requests, the worker's queries hung under the publisher's
    # request and, clipped to it, gave an N+1 with a negative union (-2,154 ms per request).
    b = RunBuilder()
    for i in range(10):
        _publish_then_process(b, i, consumer_kind="INTERNAL")
    store = b.build()
    with open_run(store, "r") as run:
        found = n_plus_one(run)
        findings = run.findings()
    for f in found:
        assert f.evidence["union_ms_per_request"] >= 0
    for f in findings:
        assert f.impact_ms >= 0, f
        numbers = [v for v in f.evidence.values() if isinstance(v, (int, float))]
        assert all(v >= 0 for v in numbers), (f.kind, f.evidence)


def test_a_receive_span_around_the_processing_is_not_a_second_request() -> None:
    # Older messaging conventions (boto3sqs, Java's JMS and Kafka clients) wrap the
    # processing's CONSUMER span in a CONSUMER "receive" span: one message, one request,
    # named after the processing. As two requests, the receive span's whole time was
    # "unexplained" (the processing is no call of its) and every message counted twice.
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 5, "/orders")
        send = b.span(trace, start + 1, start + 2, parent=r, kind="PRODUCER", name="orders send")
        receive = b.span(
            trace, start + 20, start + 70, parent=send, kind="CONSUMER", name="orders receive",
            service="worker",
        )  # fmt: skip
        process = b.span(
            trace, start + 21, start + 69, parent=receive, kind="CONSUMER", name="orders process",
            service="worker",
        )  # fmt: skip
        for n in range(12):
            at = start + 22 + n * 3
            b.query(trace, process, at, at + 2, f"SELECT * FROM items WHERE id = {n}")
    store = b.build()
    with open_run(store, "r") as run:
        routes = {r["route"]: r for r in run.routes().to_dict("records")}
        findings = run.findings()
    assert set(routes) == {"svc /orders", "worker orders process"}
    assert routes["worker orders process"]["requests"] == 10
    assert routes["svc /orders"]["db_calls"] == 0
    assert [(f.kind, f.route) for f in findings] == [("n_plus_one", "worker orders process")]


def test_a_task_running_another_in_its_process_is_a_request_of_its_own() -> None:
    # Celery's apply() (or eager tasks): the inner task's CONSUMER span is a child of the
    # outer one, which has work of its own: both are requests, neither the publisher's
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        r = b.request(trace, start, start + 5, "/orders")
        send = b.span(trace, start + 1, start + 2, parent=r, kind="PRODUCER", name="send")
        outer = b.span(trace, start + 20, start + 60, parent=send, kind="CONSUMER", name="a")
        b.query(trace, outer, start + 21, start + 30, "SELECT * FROM orders WHERE id = 1")
        inner = b.span(trace, start + 31, start + 59, parent=outer, kind="CONSUMER", name="b")
        b.query(trace, inner, start + 32, start + 40, "SELECT * FROM items WHERE id = 1")
    with open_run(b.build(), "r") as run:
        routes = {r["route"]: r for r in run.routes().to_dict("records")}
    assert {route: (r["requests"], r["db_calls"]) for route, r in routes.items()} == {
        "/orders": (10, 0),
        "a": (10, 1),
        "b": (10, 1),
    }


def test_a_message_handed_on_to_another_service_is_a_request_in_each() -> None:
    # a worker's CONSUMER span parent of the next service's CONSUMER span (the context
    # handed on without a PRODUCER span): two services, two requests, each its own queries
    b = RunBuilder()
    for i in range(10):
        trace, start = f"t{i}", i * 1000.0
        first = b.span(trace, start, start + 30, kind="CONSUMER", name="a", service="billing")
        b.query(trace, first, start + 1, start + 5, "SELECT * FROM invoices WHERE id = 1")
        second = b.span(
            trace, start + 10, start + 40, parent=first, kind="CONSUMER", name="b", service="mail"
        )
        b.query(trace, second, start + 11, start + 15, "SELECT * FROM letters WHERE id = 1")
    with open_run(b.build(), "r") as run:
        routes = {r["route"]: r for r in run.routes().to_dict("records")}
    assert {route: (r["requests"], r["db_calls"]) for route, r in routes.items()} == {
        "billing a": (10, 1),
        "mail b": (10, 1),
    }


def test_a_batch_receive_above_the_messages_is_no_lost_span() -> None:
    # boto3sqs: one root "receive" span per batch, each message's processing a CONSUMER
    # child starting after it ended. The receive span is the messages' way in, not a span
    # of "no SERVER or CONSUMER span in its trace".
    b = RunBuilder()
    for i in range(4):
        trace, start = f"t{i}", i * 1000.0
        receive = b.span(trace, start, start + 10, kind="CONSUMER", name="q receive")
        for m in range(5):
            at = start + 11 + m * 30
            b.span(trace, at, at + 28, parent=receive, kind="CONSUMER", name="q process")
    with open_run(b.build(), "r") as run:
        routes = run.routes()
        assert run.unattributed_spans == 0
    assert dict(zip(routes["route"], routes["requests"], strict=True)) == {"q process": 20}


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_a_real_pika_worker_is_analysed_as_its_own_requests(
    pg_dsn: str, amqp_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.pika")
    out = tmp_path / "spans.jsonl"
    messages = 20
    produce(WORKER, amqp_url, pg_dsn, out, str(messages))
    with correlate.open_store(":memory:") as store:
        store.ingest([out], run="r")
        kinds = dict(store.con.execute("SELECT kind, count(*) FROM spans GROUP BY kind").fetchall())
        assert kinds["CONSUMER"] == messages and kinds["PRODUCER"] >= messages
        result = correlate.analyze("r", store=store)
    routes = {r["route"]: r for r in result.routes.to_dict("records")}
    (consumer,) = [r for r in routes if r != "/orders"]
    assert "correlate_test_orders" in consumer  # pika names it after the queue
    assert routes[consumer]["requests"] == messages
    assert routes[consumer]["db_calls"] == pytest.approx(13)  # the list, then 12 items
    assert routes["/orders"]["db_calls"] == 0
    plus_one = [f for f in result.findings if f.kind == "n_plus_one"]
    assert [f.route for f in plus_one] == [consumer]
    assert plus_one[0].evidence["calls_per_request"] == 12
    for f in result.findings:
        assert f.impact_ms >= 0, f


@pytest.mark.rabbitmq
def test_a_real_celery_worker_in_the_publishers_service_is_its_own_requests(
    amqp_url: str, tmp_path: Path
) -> None:
    # Celery's instrumentation: apply_async (PRODUCER) and the task's run (CONSUMER) in
    # one service.name, the web app's and the worker's
    pytest.importorskip("opentelemetry.instrumentation.celery")
    out, tasks = tmp_path / "spans.jsonl", 20
    produce(CELERY, amqp_url, tmp_path / "shop.db", out, str(tasks))
    with correlate.open_store(":memory:") as store:
        store.ingest([out], run="r")
        result = correlate.analyze("r", store=store)
    routes = {r["route"]: r for r in result.routes.to_dict("records")}
    assert set(routes) == {"/orders", "run/orders.process"}
    assert routes["run/orders.process"]["requests"] == tasks
    assert routes["run/orders.process"]["db_calls"] == pytest.approx(13)  # the list, 12 items
    assert routes["/orders"]["db_calls"] == 0 and routes["/orders"]["downstream_ms"] > 0
    (f,) = [f for f in result.findings if f.kind == "n_plus_one"]
    assert (f.route, f.evidence["calls_per_request"]) == ("run/orders.process", 12)
    for f in result.findings:
        assert f.impact_ms >= 0, f


def test_the_headline_gives_web_requests_and_messages_their_own_latency() -> None:
    # 10 publishing requests of 5 ms and the 10 messages they published, each processed in
    # 38 ms: "20 requests, p50 21.5 ms" would describe neither.
    from correlate.render.words import headline

    b = RunBuilder()
    for i in range(10):
        _publish_then_process(b, i)
    result = correlate.analyze("r", store=b.build())
    kinds = result.summary["by_kind"]
    assert (kinds["web"]["count"], kinds["messages"]["count"]) == (10, 10)
    assert kinds["web"]["p95_ms"] == pytest.approx(5)
    assert kinds["messages"]["p50_ms"] == pytest.approx(38)
    said = headline(result.summary)
    assert said.startswith(
        "10 requests on 1 route (p50 5.00 ms, p95 5.00 ms) and "
        "10 messages on 1 route (p50 38.0 ms, p95 38.0 ms) over "
    )
    assert "errors 0%" in said
    assert result.to_text().splitlines()[1].startswith(said.split(" over ")[0])


def test_a_worker_alone_is_said_to_process_messages() -> None:
    from correlate.render.words import headline

    b = RunBuilder()
    for i in range(6):
        c = b.span(f"t{i}", i * 100.0, i * 100.0 + 8, kind="CONSUMER", name="orders process")
        b.query(f"t{i}", c, i * 100.0 + 1, i * 100.0 + 3)
    result = correlate.analyze("r", store=b.build())
    assert set(result.summary["by_kind"]) == {"messages"}
    assert headline(result.summary).startswith("6 messages on 1 route over ")
    assert "p50 8.00 ms" in headline(result.summary)
