"""Locust load for the demo shop: weighted tasks, staged users, one traceparent per request.

Run by :func:`correlate.demo.run_demo` as ``locust -f <this file> --headless``;
its settings come as JSON in the environment variable ``CORRELATE_DEMO_LOAD``
(see :func:`correlate.demo.runner.load_settings`).

Every request carries a fresh W3C ``traceparent``; the server span continues
that trace, so ``load/requests.jsonl`` (written here, one line per request)
joins the server's spans exactly on ``trace_id``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, events, task

SETTINGS: dict[str, Any] = json.loads(os.environ.get("CORRELATE_DEMO_LOAD", "{}"))
STAGES: list[dict[str, float]] = SETTINGS.get(
    "stages", [{"until_s": 10, "users": 5, "spawn_rate": 5}]
)
CUSTOMERS = int(SETTINGS.get("customers", 5_000))
PRODUCTS = int(SETTINGS.get("products", 500))
DECLINE_SHARE = float(SETTINGS.get("decline_share", 0.05))
THINK = SETTINGS.get("think_time", [0.5, 1.5])
SEED = int(SETTINGS.get("seed", 42))
#: seconds a shopper waits for an answer before giving up on the request
TIMEOUT_S = float(SETTINGS.get("request_timeout_s", 60.0))

_user_numbers = itertools.count(1)
# Declines are every Nth checkout of the whole run, not a coin flip per
# request: with pool_size + max_overflow = 10 the pool is exhausted at exactly
# checkout 10 * N, so the time of the collapse depends only on throughput.
_DECLINE_EVERY = max(1, round(1 / DECLINE_SHARE)) if DECLINE_SHARE > 0 else 0
_checkouts = itertools.count(1)
_log: Any = None


@events.test_start.add_listener
def _open_log(environment: Any, **kwargs: Any) -> None:
    global _log
    path = SETTINGS.get("request_log")
    if path and _log is None:
        _log = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115


@events.test_stop.add_listener
@events.quitting.add_listener
def _close_log(environment: Any, **kwargs: Any) -> None:
    global _log
    if _log is not None:
        _log.close()
        _log = None


class Shopper(FastHttpUser):
    """One shopper: browses, looks at order history, checks out now and then."""

    wait_time = between(float(THINK[0]), float(THINK[1]))
    network_timeout = connection_timeout = TIMEOUT_S

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        # Choices are seeded per user so runs are comparable; trace ids are not
        # (below), so two runs never share a trace id.
        self.rng = random.Random(SEED * 100_003 + self.number)

    def _call(
        self,
        method: str,
        path: str,
        name: str,
        ok: tuple[int, ...] = (200,),
        json_body: Any = None,
    ) -> None:
        trace_id = os.urandom(16).hex()
        span_id = os.urandom(8).hex()
        headers = {"traceparent": f"00-{trace_id}-{span_id}-01"}
        start_ns = time.time_ns()
        t0 = time.perf_counter_ns()
        with self.client.request(
            method, path, name=name, headers=headers, json=json_body, catch_response=True
        ) as response:
            duration = time.perf_counter_ns() - t0
            status = int(response.status_code or 0)
            error = None
            if status in ok:
                response.success()
            else:
                error = f"HTTP {status}" if status else str(response.error or "no response")
                response.failure(error)
            size = len(response.content or b"")
        if _log is not None:
            _log.write(
                json.dumps(
                    {
                        "trace_id": trace_id,
                        "span_id": span_id,
                        "method": method,
                        "name": name,
                        "path": path,
                        "start_unix_nano": start_ns,
                        "duration_ns": duration,
                        "status_code": status,
                        "ok": error is None,
                        "error": error,
                        "response_bytes": size,
                        "user": self.number,
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )

    @task(30)
    def view_product(self) -> None:
        pid = self.rng.randint(1, PRODUCTS)
        self._call("GET", f"/products/{pid}", "/products/<int:product_id>")

    @task(5)
    def health(self) -> None:
        self._call("GET", "/health", "/health")

    @task(20)
    def order_history(self) -> None:
        cid = self.rng.randint(1, CUSTOMERS)
        self._call("GET", f"/customers/{cid}/orders", "/customers/<int:customer_id>/orders")

    @task(10)
    def recent_orders(self) -> None:
        self._call("GET", "/orders/recent", "/orders/recent")

    @task(15)
    def checkout(self) -> None:
        number = next(_checkouts)
        declined = bool(_DECLINE_EVERY) and number % _DECLINE_EVERY == 0
        card = "4000000000000002" if declined else "4242424242424242"
        items = [
            {"product_id": self.rng.randint(1, PRODUCTS), "quantity": self.rng.randint(1, 3)}
            for _ in range(self.rng.randint(1, 3))
        ]
        body = {"customer_id": self.rng.randint(1, CUSTOMERS), "items": items, "card": card}
        # 402 is the shop's answer to a declined card: an expected outcome, not a failure.
        self._call("POST", "/checkout", "/checkout", ok=(201, 402), json_body=body)


class Stages(LoadTestShape):
    """Users over time from ``SETTINGS['stages']``: [{until_s, users, spawn_rate}, …]."""

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        for stage in STAGES:
            if elapsed < stage["until_s"]:
                return int(stage["users"]), float(stage["spawn_rate"])
        return None
