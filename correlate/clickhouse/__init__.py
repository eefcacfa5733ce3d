"""Analysis where the spans already are: ClickHouse (the Collector's exporter schema)."""
