"""Settings of the shop: PostgreSQL from ``SHOP_PG_*`` variables, nothing else enabled."""

from __future__ import annotations

import os

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_shop.urls"
INSTALLED_APPS = ["django_shop.apps.ShopConfig"]
MIDDLEWARE: list[str] = []
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["SHOP_PG_HOST"],
        "PORT": os.environ.get("SHOP_PG_PORT", "5432"),
        "NAME": os.environ["SHOP_PG_NAME"],
        "USER": os.environ["SHOP_PG_USER"],
        "PASSWORD": os.environ.get("SHOP_PG_PASSWORD", ""),
    }
}
