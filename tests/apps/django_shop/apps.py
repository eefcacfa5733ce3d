"""The shop's Django app (label ``djshop``, so its tables are ``djshop_*``)."""

from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "django_shop"
    label = "djshop"
    default_auto_field = "django.db.models.BigAutoField"
