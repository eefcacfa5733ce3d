"""Be the OTLP endpoint of a run: receive spans, metrics and logs into a run directory.

``correlate collect`` (:func:`collect`) listens for OTLP/HTTP on 4318 and
OTLP/gRPC on 4317 (127.0.0.1 unless told otherwise) and writes what arrives
in formats ``correlate ingest`` reads. ``correlate record`` (:func:`record`)
runs a command with the endpoint in its environment, beside a receiver (and
``correlate watch``), then analyses the run.

Modules: :mod:`.collector` (the loop and its result), :mod:`.receiver` (the
listeners and the spool as one), :mod:`.http` and :mod:`.grpc_server` (one per
protocol), :mod:`.signals` (checking requests, responses), :mod:`.spool`
(memory budget, writer thread), :mod:`.files` (rotation, gzip),
:mod:`.counters`, :mod:`.recorder`.
"""

from __future__ import annotations

from correlate.collect.collector import CollectResult, collect
from correlate.collect.counters import CollectStatus
from correlate.collect.receiver import Receiver
from correlate.collect.recorder import RecordResult, record

__all__ = ["CollectResult", "CollectStatus", "Receiver", "RecordResult", "collect", "record"]
