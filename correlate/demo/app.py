"""The demo checkout service: Flask on waitress, SQLAlchemy 2.0, planted faults.

Endpoints (the Flask rule is also the span's ``http.route`` and Locust's name):

* ``GET /health`` and ``GET /products/<int:product_id>``: healthy controls.
* ``GET /customers/<int:customer_id>/orders``: fault 1, a sequential scan over
  ``orders`` while ``orders.customer_id`` has no index.
* ``GET /orders/recent``: fault 2, N+1 (one query for 20 orders, then one per
  order for its items) unless fixed with ``selectinload``.
* ``POST /checkout``: fault 3, a connection-pool leak on the payment-declined
  path (cards ending in ``0002`` are declined); once enough sessions have been
  parked, every endpoint that needs the database waits ``pool_timeout`` and fails.
* ``POST /checkout``: fault 4, a hot row: every paid checkout takes one unit of
  the Black Friday doorbuster gift (``UPDATE products SET stock = stock - 1``
  on one row) and then, holding that row lock, calls the slow fraud-check
  service (:mod:`correlate.demo.fraud`) before committing, so checkouts queue
  behind each other. Fixed: the fraud check comes first and the UPDATE just
  before the commit.

Run as a process by :func:`correlate.demo.run_demo`; ``python -m
correlate.demo.app`` reads its :class:`AppConfig` as JSON from the environment
variable ``CORRELATE_DEMO_APP_CONFIG`` (not argv, so a DSN password stays out of
``ps``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlate.demo.config import CONFIG_ENV, AppConfig
from correlate.demo.errors import DemoError
from correlate.demo.faults import Faults
from correlate.demo.fraud import FraudClient, start_fraud_stub
from correlate.demo.shop import (
    Customer,
    Order,
    Payment,
    Product,
    make_engine,
    scoped,
)

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

DECLINED_CARD_SUFFIX = "0002"
# Simulated payment-provider round trip, spent while the session (and so a
# pooled connection) is held, as checkout code commonly does.
PAYMENT_LATENCY_S = 0.015
# Fault 4: the one row every paid checkout updates (the doorbuster gift's stock).
DOORBUSTER_PRODUCT_ID = 1

# Fault 3: declined checkouts park their session here "for a retry" that never
# happens. Module-level on purpose: that is how the leak survives the request.
_RETRY_QUEUE: list[Any] = []


def charge(card: str, amount_cents: int) -> bool:
    """The pretend payment provider: deterministic, declines test cards ``…0002``."""
    time.sleep(PAYMENT_LATENCY_S)
    return not card.endswith(DECLINED_CARD_SUFFIX)


def create_app(engine: Engine, faults: Faults, fraud: FraudClient | None = None) -> Flask:
    """The checkout API on ``engine`` with the given faults planted.

    ``fraud`` calls the fraud-check service; by default the check is simulated in
    process (a sleep, no HTTP call).
    """
    from flask import Flask, jsonify, request
    from sqlalchemy import exc, select, update
    from sqlalchemy.orm import selectinload, sessionmaker

    app = Flask("correlate_demo_checkout")
    Session = sessionmaker(bind=engine, expire_on_commit=False)
    fraud_client = fraud if fraud is not None else FraudClient()
    take_doorbuster = (
        update(Product).where(Product.id == DOORBUSTER_PRODUCT_ID).values(stock=Product.stock - 1)
    )

    @app.errorhandler(exc.TimeoutError)
    def pool_exhausted(error: Exception) -> Any:
        return jsonify(error="database busy: no pooled connection available"), 503

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok")

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Any:
        with Session() as session:
            found = session.get(Product, product_id)
            if found is None:
                return jsonify(error="no such product"), 404
            return jsonify(id=found.id, name=found.name, price_cents=found.price_cents)

    @app.get("/customers/<int:customer_id>/orders")
    def customer_orders(customer_id: int) -> Any:
        with Session() as session:
            rows = session.execute(
                select(Order.id, Order.status, Order.total_cents, Order.created_at)
                .where(Order.customer_id == customer_id)
                .order_by(Order.created_at.desc())
                .limit(20)
            ).all()
        return jsonify(
            customer_id=customer_id,
            orders=[{"id": r.id, "status": r.status, "total_cents": r.total_cents} for r in rows],
        )

    @app.get("/orders/recent")
    def recent_orders() -> Any:
        query = select(Order).order_by(Order.id.desc()).limit(20)
        if not faults.n_plus_one:
            query = query.options(selectinload(Order.items))
        with Session() as session:
            orders = session.scalars(query).all()
            # With lazy="select", each o.items below is one more query (fault 2).
            body = [
                {
                    "id": o.id,
                    "total_cents": o.total_cents,
                    "items": [
                        {"product_id": i.product_id, "quantity": i.quantity} for i in o.items
                    ],
                }
                for o in orders
            ]
        return jsonify(orders=body)

    @app.post("/checkout")
    def checkout() -> Any:
        payload = request.get_json(force=True)
        customer_id = int(payload["customer_id"])
        wanted = {int(i["product_id"]): int(i["quantity"]) for i in payload["items"]}
        session = Session()
        try:
            customer = session.get(Customer, customer_id)
            products = session.scalars(select(Product).where(Product.id.in_(wanted))).all()
            if customer is None or len(products) != len(wanted):
                session.close()
                return jsonify(error="unknown customer or product"), 404
            total = sum(p.price_cents * wanted[p.id] for p in products)
            if not charge(str(payload.get("card", "")), total):
                if faults.pool_leak:
                    # Fault 3 (planted): the declined path keeps the session for a
                    # retry and returns without closing it; its pooled connection
                    # never comes back.
                    _RETRY_QUEUE.append(session)
                else:
                    session.close()
                return jsonify(error="payment declined"), 402
            screened = {"customer_id": customer_id, "total_cents": total}
            if faults.hot_row:
                # Fault 4 (planted): the row lock taken here is held across the
                # slow fraud check, until the commit below.
                session.execute(take_doorbuster)
                fraud_client.check(screened)
            else:
                fraud_client.check(screened)
                session.execute(take_doorbuster)
            now = datetime.now(UTC)
            order = Order(customer_id=customer_id, status="paid", total_cents=total, created_at=now)
            session.add(order)
            session.flush()
            session.add(
                Payment(
                    order_id=order.id,
                    customer_id=customer_id,
                    status="captured",
                    amount_cents=total,
                    created_at=now,
                )
            )
            session.commit()
            session.close()
            return jsonify(order_id=order.id, total_cents=total), 201
        except BaseException:
            session.close()
            raise

    return app


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    """Stop the service if the process that started it is gone."""
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            logger.warning("parent process %d is gone; stopping", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _interrupt(signum: int, frame: Any) -> None:
    # waitress' run() turns KeyboardInterrupt into an orderly close().
    raise KeyboardInterrupt


def serve(config: AppConfig) -> None:
    """Run the service until SIGTERM/SIGINT, then flush the recording."""
    import waitress

    faults = Faults(**config.faults)
    engine = make_engine(
        config.dsn,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout,
    )
    recording: Any = None
    instrumentor = None
    if config.record and config.run_dir is None:
        raise DemoError("record=True needs a run_dir")
    if config.record and config.run_dir is not None and config.instrument == "otel":
        from correlate.demo.otel import record_otel

        recording = record_otel(engine, config.run_dir, config.service_name)
    elif config.record and config.run_dir is not None:
        from correlate.instrument import record

        recording = record(
            engine,
            config.run_dir,
            config.service_name,
            sqlcommenter=config.sqlcommenter,
            load_profile=config.load_profile,
            run_info=config.run_info,
            git_dir=Path(__file__).parent,
        )
    stub = start_fraud_stub()
    app = create_app(scoped(engine, config.schema), faults, FraudClient(stub.url))
    urllib_instrumentor = None
    if recording is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.urllib import URLLibInstrumentor

        instrumentor = FlaskInstrumentor()
        instrumentor.instrument_app(app, tracer_provider=recording.tracer_provider)
        # the fraud check's CLIENT span, and its traceparent header
        urllib_instrumentor = URLLibInstrumentor()
        urllib_instrumentor.instrument(tracer_provider=recording.tracer_provider)
    server: Any = waitress.create_server(
        app, host="127.0.0.1", port=config.port, threads=config.threads, ident="correlate-demo"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if config.parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(config.parent_pid, stop), daemon=True).start()
    logger.info("serving on 127.0.0.1:%d, faults %s", config.port, faults)
    try:
        server.run()
    finally:
        stop.set()
        server.close()
        stub.close()
        if instrumentor is not None:
            instrumentor.uninstrument_app(app)
        if urllib_instrumentor is not None:
            urllib_instrumentor.uninstrument()
        if recording is not None:
            recording.close()
        logger.info("stopped; %d sessions parked by declined payments", len(_RETRY_QUEUE))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    serve(AppConfig.from_json(os.environ[CONFIG_ENV]))


if __name__ == "__main__":
    main()
