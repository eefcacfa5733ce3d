#!/bin/sh
# Start the shop with OpenTelemetry, drive it, stop it: the command `correlate record` runs.
# correlate record sets OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL for it;
# metrics (the pool's db.client.connection.* among them) are exported ten times a second
# rather than once a minute (the SDK's default), so the pool's series pins each lost connection
set -e
cd "$(dirname "$0")"
export OTEL_METRIC_EXPORT_INTERVAL="${OTEL_METRIC_EXPORT_INTERVAL:-100}"
export OTEL_METRIC_EXPORT_TIMEOUT="${OTEL_METRIC_EXPORT_TIMEOUT:-100}"
node --require ./tracing.js server.js &
shop=$!
node load.js
kill -TERM "$shop"   # tracing.js flushes the last spans before the process exits
wait "$shop" || true
