#!/bin/sh
# Record the otel-only sample runs (correlate demo --instrument otel): spans, pool
# metrics and correlate watch's samples, nothing of correlate.instrument's.
# usage: sample_traces/record-otel.sh [DSN] [PORT]
#   DSN: a PostgreSQL database the demo may seed (default below); PORT: the service's port.
set -eu
DSN=${1:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
PORT=${2:-14301}
HERE=$(dirname "$0")
CORRELATE=${CORRELATE:-correlate}

# Black Friday: every fault on, the pool leaking on declined payments (POST /checkout, 402).
"$CORRELATE" demo --instrument otel --watch --dsn "$DSN" --port "$PORT" \
    --duration 90s --users 20 --compress --overwrite --out "$HERE/checkout-blackfriday-otel"

# Saturation: no leak; a surge of users above what a small pool serves, then a quarter of them.
"$CORRELATE" demo --instrument otel --watch --dsn "$DSN" --port "$PORT" \
    --fault missing_index --fault n_plus_one --pool-size 3 --max-overflow 0 \
    --shape surge --duration 80s --users 70 --compress --overwrite \
    --out "$HERE/checkout-saturation-otel"
