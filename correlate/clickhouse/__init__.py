"""ClickHouse as a place spans live: the OpenTelemetry Collector's ``clickhouseexporter`` tables.

:mod:`~correlate.clickhouse.otel_schema` holds the exporter's tables as it creates
them, :mod:`~correlate.clickhouse.connection` turns a ``clickhouse://`` or
``chdb://`` URL into a connection, :mod:`~correlate.clickhouse.export` writes a
local run into those tables, and :mod:`~correlate.clickhouse.views` derives the
local store's canonical ``spans`` and ``pool_samples`` from them, inside ClickHouse.

Nothing here imports ``chdb`` or ``clickhouse_connect`` until a connection is opened
(``pip install 'correlate[clickhouse]'`` or ``'correlate[chdb]'``).
"""

from __future__ import annotations
