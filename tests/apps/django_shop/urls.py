"""The shop's routes, as Django names them in ``http.route``."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.orders),
    path("accounts/<int:account>/events/", views.account_events),
    path("customers/<int:pk>/", views.customer),
]
