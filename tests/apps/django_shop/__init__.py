"""A tiny Django shop on PostgreSQL, instrumented the way its users instrument Django.

Three views: ``orders/`` reads each order's customer one query at a time (the classic ORM
N+1: no ``select_related``), ``accounts/<int:account>/events/`` filters a large table on
a column without an index (a sequential scan per request), and ``customers/<int:pk>/``
reads one row by primary key (clean). Its tables start with ``djshop_`` (the app label),
so it can share a database with other tests.
"""
