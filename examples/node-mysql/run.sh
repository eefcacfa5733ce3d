#!/bin/sh
# Start the service with OpenTelemetry, drive it, stop it: the command `correlate record` runs.
# correlate record sets OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL for it.
set -e
cd "$(dirname "$0")"
node --require ./tracing.js server.js &
shop=$!
node load.js
kill -TERM "$shop"   # tracing.js flushes the last spans before the process exits
wait "$shop" || true
