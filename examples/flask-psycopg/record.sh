#!/bin/sh
# Record one run of app.py into RUN_DIR: `correlate collect` receives its spans over
# OTLP/HTTP, `correlate watch` samples the database's sessions when WATCH_DSN is set, and
# Locust drives it for DURATION seconds, writing its CSVs under RUN_DIR/load.
# usage: record.sh RUN_DIR   (DATABASE_URL and the app's settings from the environment)
set -eu
out=${1:?usage: record.sh RUN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
correlate=${CORRELATE:-correlate}
python=${PYTHON:-python3}
locust=${LOCUST:-locust}
otlp=${OTLP_PORT:-4318}
port=${PORT:-8000}
users=${USERS:-10}

if [ -e "$out/run.json" ]; then echo "record.sh: $out holds a run already" >&2; exit 2; fi
mkdir -p "$out/load"
$correlate collect --out "$out" --http-port "$otlp" --no-grpc &
collector=$!
watcher=
if [ -n "${WATCH_DSN:-}" ]; then
    $correlate watch --dsn "$WATCH_DSN" --out "$out" --interval 1s &
    watcher=$!
fi
until [ -e "$out/run.json" ]; do sleep 0.2; done  # written once the receiver listens

OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp" PORT="$port" "$python" "$here/app.py" &
shop=$!
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
    if ! kill -0 "$shop" 2>/dev/null; then  # it exited on start: stop the recorders too
        kill -TERM "$collector" $watcher
        echo "record.sh: app.py exited on start" >&2
        exit 1
    fi
    sleep 0.2
done

"$locust" -f "$here/locustfile.py" --headless --only-summary -u "$users" -r "$users" \
    -t "${DURATION:-20}s" --host "http://127.0.0.1:$port" --csv "$out/load/locust" || true

kill -TERM "$shop"  # the app exports its last spans as it exits
wait "$shop" || true
if [ -n "$watcher" ]; then kill -TERM "$watcher"; wait "$watcher" || true; fi
kill -TERM "$collector"
wait "$collector"
