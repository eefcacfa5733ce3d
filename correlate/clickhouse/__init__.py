"""ClickHouse as a place spans live, and the analysis run where they are.

:mod:`~correlate.clickhouse.otel_schema` holds the OpenTelemetry Collector's
``clickhouseexporter`` tables as it creates them,
:mod:`~correlate.clickhouse.connection` turns a ``clickhouse://`` or ``chdb://``
URL into a connection, :mod:`~correlate.clickhouse.export` writes a local run into
those tables, and :mod:`~correlate.clickhouse.views` derives the local store's
canonical ``spans`` (and, through :mod:`~correlate.clickhouse.pool_view` and
:mod:`~correlate.clickhouse.statements`, ``pool_samples``, ``statements`` and
``db_spans``) from them, inside ClickHouse, with local ingest's own SQL rewritten for
ClickHouse. :mod:`~correlate.clickhouse.engine`
then runs the analysis' SQL there, translated by
:mod:`~correlate.clickhouse.translate`: only aggregates come back.

Nothing here imports ``chdb`` or ``clickhouse_connect`` until a connection is opened
(``pip install 'correlate[clickhouse]'`` or ``'correlate[chdb]'``).
"""

from __future__ import annotations
