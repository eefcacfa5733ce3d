"""Customers, their orders, and an account event log with no index on its account."""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=80)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    total_cents = models.IntegerField()


class Event(models.Model):
    # no db_index: filtering on it reads the whole table
    account = models.IntegerField()
    kind = models.CharField(max_length=20)
