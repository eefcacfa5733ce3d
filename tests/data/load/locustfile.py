"""Locust file behind the Locust fixtures in this directory (see README.md to regenerate)."""

from locust import HttpUser, between, task


class Shopper(HttpUser):
    wait_time = between(0.1, 0.3)

    @task(4)
    def order(self) -> None:
        self.client.get("/orders/7", name="/orders/{id}")

    @task(1)
    def fail(self) -> None:
        self.client.get("/fail")

    @task(1)
    def broken(self) -> None:
        # an exception in the task itself: it goes to locust_exceptions.csv with its traceback
        raise RuntimeError("planted in the locustfile")
