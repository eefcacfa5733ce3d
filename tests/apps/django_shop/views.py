"""The shop's three views: one N+1, one slow query, one clean."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from .models import Customer, Event, Order


def orders(request: HttpRequest) -> JsonResponse:
    """Recent orders with their customer's name: one query for the orders, then one per
    order for its customer (no ``select_related``)."""
    rows = [
        {"id": o.id, "customer": o.customer.name, "total_cents": o.total_cents}
        for o in Order.objects.order_by("id")[:20]
    ]
    return JsonResponse({"orders": rows})


def account_events(request: HttpRequest, account: int) -> JsonResponse:
    """An account's events, filtered on a column without an index."""
    rows = list(Event.objects.filter(account=account).values("id", "kind"))
    return JsonResponse({"events": rows})


def customer(request: HttpRequest, pk: int) -> JsonResponse:
    """One customer by primary key."""
    c = Customer.objects.get(pk=pk)
    return JsonResponse({"id": c.id, "name": c.name})
