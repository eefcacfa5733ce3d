"""Serve the Django shop (tests/apps/django_shop) and request each of its views.

Instrumented only with the standard packages, as a Django user does:
opentelemetry-instrumentation-django (a SERVER span per request, ``http.route`` from
the URL pattern) and opentelemetry-instrumentation-psycopg (a CLIENT span per statement,
as Django's ORM wrote it), exported by the SDK's OTLP/JSON file exporter. The service
runs under a real WSGI server (wsgiref) and is called over HTTP with urllib.

With ``sqlcommenter``, the Django instrumentation's option a user turns on to see the
route in the database's own logs: each statement ends in a comment with the controller,
the route and the traceparent (its ``%`` escaped as ``%%`` for psycopg).

Creates the shop's ``djshop_*`` tables (dropping old ones) and leaves them for the plan
capture; the caller drops them. Run as a subprocess: instrumentors patch once per process.
Usage: python django_producer.py DSN OUT.jsonl ROUNDS [sqlcommenter]
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))

CUSTOMERS, ORDERS, EVENTS, ACCOUNTS = 50, 200, 300_000, 5_000


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request
        pass


def _configure(dsn: str) -> None:
    url = urlsplit(dsn.replace("+psycopg", ""))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="django_shop.settings",
        SHOP_PG_HOST=url.hostname or "127.0.0.1",
        SHOP_PG_PORT=str(url.port or 5432),
        SHOP_PG_NAME=url.path.lstrip("/"),
        SHOP_PG_USER=url.username or "postgres",
        SHOP_PG_PASSWORD=url.password or "",
    )


def _create_and_fill() -> None:
    """The shop's tables, made by Django's schema editor, filled before tracing starts."""
    from django.db import connection
    from django_shop.models import Customer, Event, Order

    with connection.cursor() as cursor:
        for model in (Order, Customer, Event):
            cursor.execute(f'DROP TABLE IF EXISTS "{model._meta.db_table}" CASCADE')
    with connection.schema_editor() as editor:
        for model in (Customer, Order, Event):
            editor.create_model(model)
    Customer.objects.bulk_create(Customer(name=f"customer {i}") for i in range(CUSTOMERS))
    ids = list(Customer.objects.values_list("id", flat=True))
    Order.objects.bulk_create(
        Order(customer_id=ids[i % len(ids)], total_cents=100 + i) for i in range(ORDERS)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO "djshop_event" ("account", "kind") '
            "SELECT n %% %s, 'login' FROM generate_series(1, %s) AS n",
            [ACCOUNTS, EVENTS],
        )
        cursor.execute('ANALYZE "djshop_event"')
    connection.close()


def main(dsn: str, out: str, rounds: int, sqlcommenter: bool = False) -> None:
    _configure(dsn)
    import django
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    django.setup()
    _create_and_fill()

    provider = TracerProvider(resource=Resource.create({"service.name": "django-shop"}))
    provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out)))
    DjangoInstrumentor().instrument(tracer_provider=provider, is_sql_commentor_enabled=sqlcommenter)
    PsycopgInstrumentor().instrument(tracer_provider=provider)

    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    for i in range(rounds):
        for path in ("/orders/", f"/accounts/{i + 1}/events/", f"/customers/{i + 1}/"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                assert response.status == 200, (path, response.status)
                response.read()
    server.shutdown()
    server.server_close()
    DjangoInstrumentor().uninstrument()
    PsycopgInstrumentor().uninstrument()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["sqlcommenter"])
