"""``record()``: make a service write a correlate run directory while it runs."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from correlate.errors import CorrelateError
from correlate.instrument import runinfo
from correlate.instrument._jsonl import JsonlWriter
from correlate.instrument.pool import PoolTracker, RequestTracker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

# BatchSpanProcessor's defaults (queue 2048, export every 5 s) drop spans under a
# load test: an N+1 endpoint alone makes ~20 spans per request. A bigger queue
# and a shorter delay keep every span at a cost of some memory.
SPAN_QUEUE_SIZE = 65_536
SPAN_BATCH_SIZE = 2_048
SPAN_EXPORT_DELAY_MS = 1_000


class RecordError(CorrelateError):
    """``record()`` cannot set up recording as asked."""


@dataclass(frozen=True, slots=True)
class RecordingStats:
    """Counts so far, summed over the tracked engines."""

    checkouts: int
    timeouts: int
    leak_suspects: int


class Recording:
    """A running recording; returned by :func:`record`. Close it to flush.

    Use it as a context manager, or call :meth:`close` (idempotent) when the
    service stops. Closing uninstruments SQLAlchemy (if ``record`` instrumented
    it), detaches the pool listeners, writes connections still checked out,
    flushes and shuts down the span processors it added, and stamps the end time
    into ``run.json``.
    """

    def __init__(
        self,
        run_dir: Path,
        service_name: str,
        tracer_provider: TracerProvider,
        owns_provider: bool,
        span_processor: BatchSpanProcessor,
        request_tracker: RequestTracker,
        trackers: list[PoolTracker],
        writers: dict[str, JsonlWriter],
        instrumentor: Any | None,
        sample_interval: float,
    ) -> None:
        self.run_dir = run_dir
        self.service_name = service_name
        self.tracer_provider = tracer_provider
        self._owns_provider = owns_provider
        self._span_processor = span_processor
        self._request_tracker = request_tracker
        self._trackers = trackers
        self._writers = writers
        self._instrumentor = instrumentor
        self._interval = sample_interval
        self._stop = threading.Event()
        self._close_lock = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(
            target=self._sample_loop, name="correlate-pool-sampler", daemon=True
        )

    def _start(self) -> None:
        self._sample_once()
        self._thread.start()

    def _sample_once(self) -> None:
        now = time.time_ns()
        for tracker in self._trackers:
            self._writers["samples"].write(tracker.sample(now))
            tracker.check_leaks(now)
        for writer in self._writers.values():
            writer.flush()

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sample_once()
            except OSError:
                # A full disk must not take the service down; say so once per tick.
                logger.exception("correlate: could not write pool telemetry")

    def sample_now(self) -> None:
        """Take a pool sample and run the leak check now, between the timer's ticks."""
        if not self.closed:
            self._sample_once()

    @property
    def stats(self) -> RecordingStats:
        return RecordingStats(
            checkouts=sum(t.checkouts_total for t in self._trackers),
            timeouts=sum(t.timeouts_total for t in self._trackers),
            leak_suspects=sum(t.leak_suspects_total for t in self._trackers),
        )

    def flush(self, timeout_millis: int = 30_000) -> None:
        """Write everything buffered so far (spans and pool telemetry)."""
        self._span_processor.force_flush(timeout_millis)
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        """Stop recording, flush, and undo every global change ``record`` made."""
        with self._close_lock:
            if self.closed:
                return
            self.closed = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._instrumentor is not None:
            # No new DB spans from here on; the listeners come off the engines.
            self._instrumentor.uninstrument()
        # The last sample still sees what is checked out; stop() then reports it.
        self._sample_once()
        for tracker in self._trackers:
            tracker.stop()
        if self._owns_provider:
            self.tracer_provider.shutdown()
        else:
            self._span_processor.shutdown()
            self._request_tracker.shutdown()
            _detach_processors(self.tracer_provider, (self._span_processor, self._request_tracker))
        for writer in self._writers.values():
            writer.close()
        ended = time.time_ns()
        stats = self.stats
        runinfo.update_run_json(
            self.run_dir,
            {
                "ended_unix_nano": ended,
                "ended_at": runinfo.iso_utc(ended),
                "pool_totals": {
                    "checkouts": stats.checkouts,
                    "timeouts": stats.timeouts,
                    "leak_suspects": stats.leak_suspects,
                },
            },
        )
        logger.info("correlate: recording in %s closed (%s)", self.run_dir, stats)

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "recording"
        return f"<Recording {self.service_name!r} into {str(self.run_dir)!r} ({state})>"


def _detach_processors(provider: Any, ours: tuple[Any, ...]) -> None:
    """Take our processors off a provider we joined but do not own.

    The SDK has no public remove; without this a test suite that records many
    times into one provider would pile up shut-down processors. Best effort:
    if the SDK's internals change, they stay attached but inert.
    """
    multi: Any = getattr(provider, "_active_span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    lock = getattr(multi, "_lock", None)
    if not isinstance(processors, tuple) or lock is None:
        return
    with lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p not in ours)


def _choose_provider(
    tracer_provider: TracerProvider | None, service_name: str, set_global: bool
) -> tuple[TracerProvider, bool]:
    """(provider, owned): join the given or global SDK provider, else make one."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if tracer_provider is not None:
        if not isinstance(tracer_provider, TracerProvider):
            raise RecordError(
                f"tracer_provider must be an opentelemetry.sdk.trace.TracerProvider, got "
                f"{type(tracer_provider).__name__}; pass none to let record() create one"
            )
        return tracer_provider, False
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider, True


def record(
    engine: Engine | Sequence[Engine],
    run_dir: str | os.PathLike[str],
    service_name: str,
    *,
    tracer_provider: TracerProvider | None = None,
    set_global: bool = True,
    instrument_sqlalchemy: bool = True,
    sqlcommenter: bool = False,
    commenter_options: Mapping[str, bool] | None = None,
    load_profile: Mapping[str, Any] | None = None,
    run_info: Mapping[str, Any] | None = None,
    sample_interval: float = 1.0,
    leak_grace: float = 1.0,
    git_dir: str | os.PathLike[str] | None = None,
) -> Recording:
    """Record spans and pool telemetry of a service into ``run_dir``.

    Call it once in the service under test, after creating the engine(s) and
    before serving. It

    * joins ``tracer_provider``, or the global SDK provider if one is set, or
      creates one (and makes it global unless ``set_global=False``), and adds a
      batch processor writing OTLP/JSON lines to ``run_dir/spans/``;
    * instruments the engines with opentelemetry-instrumentation-sqlalchemy
      (``sqlcommenter=True`` appends a ``traceparent`` comment to each statement);
    * writes pool checkouts, timeouts, leak suspects and periodic pool samples
      to ``run_dir/pool/`` (a leak suspect is a connection still checked out
      ``leak_grace`` seconds after the request span that took it ended);
    * writes ``run_dir/run.json``.

    Instrument your web framework with ``recording.tracer_provider`` so server
    spans land in the same files, e.g.
    ``FlaskInstrumentor().instrument_app(app, tracer_provider=rec.tracer_provider)``.

    >>> import sqlalchemy, tempfile
    >>> engine = sqlalchemy.create_engine("sqlite://")
    >>> with record(engine, tempfile.mkdtemp(), "doc", set_global=False) as rec:
    ...     with engine.connect() as conn:
    ...         conn.exec_driver_sql("select 1").scalar()
    1
    >>> rec.stats.checkouts
    1
    """
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    engines = [engine] if not isinstance(engine, Sequence) else list(engine)
    if not engines:
        raise RecordError("record() needs at least one SQLAlchemy engine")
    if sample_interval <= 0:
        raise RecordError(f"sample_interval must be positive, got {sample_interval}")
    run_path = Path(run_dir)
    try:
        (run_path / "spans").mkdir(parents=True, exist_ok=True)
        (run_path / "pool").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordError(f"cannot create run directory {run_path}: {exc}") from exc

    started = time.time_ns()
    info = runinfo.base_run_info(service_name, started)
    info["load_profile"] = dict(load_profile) if load_profile is not None else None
    info["git"] = runinfo.git_info(Path(git_dir) if git_dir is not None else Path.cwd())
    info["databases"] = [runinfo.database_info(e) for e in engines]
    info["instrumentation"] = {
        "sqlalchemy": instrument_sqlalchemy,
        "sqlcommenter": sqlcommenter,
        "semconv_stability_opt_in": os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN"),
        "sample_interval_s": sample_interval,
        "leak_grace_s": leak_grace,
    }
    if run_info:
        info.update(run_info)
    runinfo.update_run_json(run_path, info)

    provider, owned = _choose_provider(tracer_provider, service_name, set_global)
    request_tracker = RequestTracker()
    provider.add_span_processor(request_tracker)
    exporter = FileSpanExporter(run_path / "spans" / f"spans-{os.getpid()}.jsonl")
    span_processor = BatchSpanProcessor(
        exporter,
        max_queue_size=SPAN_QUEUE_SIZE,
        max_export_batch_size=SPAN_BATCH_SIZE,
        schedule_delay_millis=SPAN_EXPORT_DELAY_MS,
    )
    provider.add_span_processor(span_processor)

    instrumentor = None
    if instrument_sqlalchemy:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        candidate = SQLAlchemyInstrumentor()
        if candidate.is_instrumented_by_opentelemetry:
            logger.warning(
                "correlate: SQLAlchemy is already instrumented; keeping that "
                "instrumentation (sqlcommenter=%s is ignored)",
                sqlcommenter,
            )
        else:
            candidate.instrument(
                engines=engines,
                tracer_provider=provider,
                enable_commenter=sqlcommenter,
                commenter_options=dict(commenter_options or {}),
            )
            instrumentor = candidate

    writers = {
        name: JsonlWriter(run_path / "pool" / f"{name}.jsonl")
        for name in ("checkouts", "samples", "leaks")
    }
    trackers = [
        PoolTracker(
            e, request_tracker, writers["checkouts"], writers["leaks"], int(leak_grace * 1e9)
        )
        for e in engines
    ]
    for tracker in trackers:
        tracker.start()
    recording = Recording(
        run_path,
        service_name,
        provider,
        owned,
        span_processor,
        request_tracker,
        trackers,
        writers,
        instrumentor,
        sample_interval,
    )
    try:
        recording._start()
    except BaseException:
        with contextlib.suppress(Exception):
            recording.close()
        raise
    logger.info("correlate: recording %s into %s", service_name, run_path)
    return recording
