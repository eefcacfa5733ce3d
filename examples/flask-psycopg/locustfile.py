"""Shoppers for app.py: half browse the products, some look up an order, some check out;
DECLINED_SHARE of the checkouts pay with a card that is declined."""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

DECLINED_SHARE = float(os.environ.get("DECLINED_SHARE", "0.1"))
WAIT = (float(os.environ.get("WAIT_MIN", "0.2")), float(os.environ.get("WAIT_MAX", "0.6")))


class Shopper(FastHttpUser):
    wait_time = between(*WAIT)

    @task(5)
    def products(self) -> None:
        self.client.get("/products")

    @task(3)
    def order(self) -> None:
        self.client.get(f"/orders/{random.randint(1, 500)}", name="/orders/<id>")

    @task(2)
    def checkout(self) -> None:
        declined = random.random() < DECLINED_SHARE
        card = "4000000000000002" if declined else "4242424242424242"
        body = {"customer_id": random.randint(1, 100), "total": 25, "card": card}
        self.client.post("/checkout", json=body)
