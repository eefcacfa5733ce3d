"""Pool telemetry that opentelemetry-instrumentation-sqlalchemy does not give.

The standard instrumentation has a ``connect`` span around ``Engine.connect()``
and an up/down counter of used/idle connections, nothing more. This module
adds, per tracked engine:

* one record per checkout: how long the caller waited for the pool, how long it
  held the connection, which trace / request span / route took it, and the code
  line that took it (``pool/checkouts.jsonl``);
* checkouts that fail with ``sqlalchemy.exc.TimeoutError`` (pool exhausted),
  with the route that hit it (same file, ``outcome = "timeout"``);
* leak suspects: connections still checked out a grace period after the request
  span that took them has ended (``pool/leaks.jsonl``);
* periodic samples of the pool's state (``pool/samples.jsonl``).

The file formats are described in ``docs/run-directory.md``.

There is no "checkout started" pool event, so the wait is measured by wrapping
``Pool.connect`` (the one path every checkout takes, including ORM sessions and
``Engine.execution_options()`` copies) and closed by the ``checkout`` event,
which fires once the connection has been handed over.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from correlate.instrument._jsonl import JsonlWriter

SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"

# Attributes this module puts on spans, so that a plain OTLP consumer sees the
# pool facts too (documented in docs/run-directory.md).
ATTR_WAIT_NS = "correlate.pool.wait_ns"
ATTR_NEW_CONNECTION = "correlate.pool.new_connection"
ATTR_POOL_NAME = "correlate.pool.name"
ATTR_CHECKOUTS = "correlate.pool.checkouts"
ATTR_TIMEOUTS = "correlate.pool.timeouts"

_local = threading.local()


def _pending_stack() -> list[int]:
    stack: list[int] | None = getattr(_local, "pending", None)
    if stack is None:
        stack = _local.pending = []
    return stack


# ---------------------------------------------------------------------------
# Request context: which server span (and route) is a checkout made for?


def _hex_trace(value: int) -> str:
    return format(value, "032x")


def _hex_span(value: int) -> str:
    return format(value, "016x")


class RequestTracker(SpanProcessor):
    """Keeps the live spans of a provider so a checkout can find its request.

    An SDK span only knows its parent's id, not the parent object, so finding
    the enclosing SERVER span means walking a table of spans that have started
    and not yet ended. The request of a span is its nearest SERVER ancestor, or
    failing that its local root (a job or script span).
    """

    def __init__(self) -> None:
        self._live: dict[int, Span] = {}
        self._listeners: list[Callable[[int, int], None]] = []
        self._closed = False

    def add_listener(self, fn: Callable[[int, int], None]) -> None:
        """Call ``fn(span_id, end_unix_nano)`` whenever a span ends."""
        self._listeners.append(fn)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._closed:
            self._live[span.context.span_id] = span

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or self._closed:
            return
        self._live.pop(context.span_id, None)
        end = span.end_time or time.time_ns()
        for listener in self._listeners:
            listener(context.span_id, end)

    def shutdown(self) -> None:
        self._closed = True
        self._live.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def request_of(self, span: Any) -> Any | None:
        """The request span that ``span`` belongs to, or None if unknown."""
        if not isinstance(span, ReadableSpan) or span.context is None:
            return None
        current = span
        for _ in range(256):  # a cycle is impossible, but a bound costs nothing
            if current.kind == SpanKind.SERVER:
                return current
            parent = current.parent
            if parent is None or parent.is_remote:
                return current
            found = self._live.get(parent.span_id)
            if found is None:
                return current
            current = found
        return current


# ---------------------------------------------------------------------------
# Where in the application a checkout came from.

_SKIP_PREFIXES: tuple[str, ...] | None = None
_location_cache: dict[str, str] = {}


def _skip_prefixes() -> tuple[str, ...]:
    global _SKIP_PREFIXES
    if _SKIP_PREFIXES is None:
        import opentelemetry
        import sqlalchemy

        dirs = [os.path.dirname(sqlalchemy.__file__), os.path.dirname(__file__)]
        dirs += list(opentelemetry.__path__)
        with contextlib.suppress(ImportError):
            import wrapt

            dirs.append(os.path.dirname(wrapt.__file__))
        prefixes = tuple(d + os.sep for d in dirs)
        files = (contextlib.__file__, threading.__file__)
        _SKIP_PREFIXES = prefixes + tuple(files)
    return _SKIP_PREFIXES


def _short_path(filename: str) -> str:
    """A path that does not depend on where the service was installed.

    site-packages → the module path; under the working directory → relative to
    it; else relative to the longest ``sys.path`` entry holding it (an editable
    install); else as is.
    """
    short = _location_cache.get(filename)
    if short is None:
        short = filename
        marker = os.sep + "site-packages" + os.sep
        if marker in filename:
            short = filename.split(marker, 1)[1]
        else:
            cwd = os.getcwd() + os.sep
            roots = [p + os.sep for p in sys.path if p and os.path.isabs(p)]
            if filename.startswith(cwd):
                short = filename[len(cwd) :]
            else:
                holding = [r for r in roots if filename.startswith(r)]
                if holding:
                    short = filename[len(max(holding, key=len)) :]
        _location_cache[filename] = short
    return short


def caller_location() -> str | None:
    """``file:line in function`` of the first frame outside SQLAlchemy/OTel/us."""
    skip = _skip_prefixes()
    frame: Any = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(skip) and not filename.startswith("<"):
            return f"{_short_path(filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return None


# ---------------------------------------------------------------------------
# Wrapping Pool.connect, once per process, shared by every tracker.

_REGISTRY: weakref.WeakKeyDictionary[Any, PoolTracker] = weakref.WeakKeyDictionary()
_patch_lock = threading.Lock()
_patch_users = 0
_patched: list[tuple[Any, Any]] = []


def _make_connect_wrapper(original: Any) -> Any:
    @functools.wraps(original)
    def connect(self: Any) -> Any:
        tracker = _REGISTRY.get(self)
        if tracker is None:
            return original(self)
        return tracker.timed_connect(original, self)

    connect.__correlate_original__ = original  # type: ignore[attr-defined]
    return connect


def _install_connect_patch() -> None:
    global _patch_users
    from sqlalchemy.pool import Pool, SingletonThreadPool

    with _patch_lock:
        _patch_users += 1
        if _patch_users > 1:
            return
        # SingletonThreadPool has its own connect(); every other pool class
        # inherits Pool.connect.
        for cls in (Pool, SingletonThreadPool):
            original = cls.__dict__["connect"]
            _patched.append((cls, original))
            cls.connect = _make_connect_wrapper(original)  # type: ignore[method-assign]


def _remove_connect_patch() -> None:
    global _patch_users
    with _patch_lock:
        _patch_users -= 1
        if _patch_users > 0:
            return
        while _patched:
            cls, original = _patched.pop()
            cls.connect = original


# ---------------------------------------------------------------------------
# Per-engine tracking.


@dataclass(slots=True)
class _Checkout:
    trace_id: str | None
    request_span_id: int | None
    connect_span_id: str | None
    span_id: str | None
    route: str | None
    request_name: str | None
    start_ns: int | None
    acquired_ns: int
    wait_ns: int | None
    new_connection: bool
    location: str | None
    thread: str
    request_ended_ns: int | None = None
    leak_suspect: bool = False
    returned_ns: int | None = None


def _pool_name(engine: Engine) -> str:
    logging_name = getattr(engine.pool, "logging_name", None)
    if logging_name:
        return str(logging_name)
    from correlate.redact import redact_url

    return redact_url(engine.url)


class PoolTracker:
    """Checkout, leak and timeout telemetry for one engine's pool."""

    def __init__(
        self,
        engine: Engine,
        requests: RequestTracker,
        checkouts: JsonlWriter,
        leaks: JsonlWriter,
        leak_grace_ns: int,
    ) -> None:
        self.engine = engine
        self.name = _pool_name(engine)
        self._requests = requests
        self._checkouts = checkouts
        self._leaks = leaks
        self._grace_ns = leak_grace_ns
        self._lock = threading.Lock()
        self._open: dict[int, _Checkout] = {}
        self._owned: dict[int, list[_Checkout]] = {}
        self._suspects_pending: list[_Checkout] = []
        self._pid = os.getpid()
        self.waiters = 0
        self.checkouts_total = 0
        self.timeouts_total = 0
        self.leak_suspects_total = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        from sqlalchemy import event

        _install_connect_patch()
        _REGISTRY[self.engine.pool] = self
        event.listen(self.engine, "checkout", self._on_checkout)
        event.listen(self.engine, "checkin", self._on_checkin)
        event.listen(self.engine, "connect", self._on_connect)
        # Engine.dispose() swaps in a new Pool object; listeners follow it, the
        # registry entry has to be moved by hand.
        event.listen(self.engine, "engine_disposed", self._on_disposed)
        self._requests.add_listener(self._on_span_end)
        self._started = True

    def stop(self) -> None:
        """Detach from the engine and write what is still checked out."""
        if not self._started:
            return
        from sqlalchemy import event

        self._started = False
        for name, fn in (
            ("checkout", self._on_checkout),
            ("checkin", self._on_checkin),
            ("connect", self._on_connect),
            ("engine_disposed", self._on_disposed),
        ):
            with contextlib.suppress(Exception):  # already removed, e.g. a disposed engine
                event.remove(self.engine, name, fn)
        _REGISTRY.pop(self.engine.pool, None)
        _remove_connect_patch()
        now = time.time_ns()
        self.check_leaks(now, final=True)
        with self._lock:
            still_open = list(self._open.values())
            self._open.clear()
            self._owned.clear()
        for co in still_open:
            self._write_checkout(co, outcome="open_at_shutdown", returned_ns=None, error=None)

    def _on_disposed(self, engine: Engine) -> None:
        _REGISTRY[engine.pool] = self

    # -- the hooks ---------------------------------------------------------

    def timed_connect(self, original: Callable[[Any], Any], pool: Pool) -> Any:
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        start = time.time_ns()
        stack = _pending_stack()
        stack.append(start)
        _local.new_connection = False
        with self._lock:
            self.waiters += 1
        try:
            return original(pool)
        except PoolTimeout as exc:
            self._on_timeout(start, exc)
            raise
        finally:
            with self._lock:
                self.waiters -= 1
            stack.pop()

    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        _local.new_connection = True

    def _context(self) -> tuple[Any, Any, str | None, str | None, str | None]:
        """(current span, request span, trace id, route, connect span id)."""
        current = trace.get_current_span()
        ctx = current.get_span_context()
        if not ctx.is_valid:
            return None, None, None, None, None
        request = self._requests.request_of(current)
        route = None
        if request is not None:
            attrs = request.attributes or {}
            route = attrs.get("http.route")
        connect_id = None
        if isinstance(current, ReadableSpan) and current.name == "connect":
            scope = current.instrumentation_scope
            if scope is not None and scope.name == SQLALCHEMY_SCOPE:
                connect_id = _hex_span(ctx.span_id)
        return current, request, _hex_trace(ctx.trace_id), route, connect_id

    def _on_checkout(
        self, dbapi_connection: Any, connection_record: Any, connection_proxy: Any
    ) -> None:
        acquired = time.time_ns()
        stack = _pending_stack()
        start = stack[-1] if stack else None
        wait = acquired - start if start is not None else None
        new_connection = bool(getattr(_local, "new_connection", False))
        _local.new_connection = False
        current, request, trace_id, route, connect_id = self._context()
        request_id = request.context.span_id if request is not None else None
        co = _Checkout(
            trace_id=trace_id,
            request_span_id=request_id,
            connect_span_id=connect_id,
            span_id=_hex_span(current.get_span_context().span_id) if current else None,
            route=str(route) if route is not None else None,
            request_name=request.name if request is not None else None,
            start_ns=start,
            acquired_ns=acquired,
            wait_ns=wait,
            new_connection=new_connection,
            location=caller_location(),
            thread=threading.current_thread().name,
        )
        with self._lock:
            self._open[id(connection_record)] = co
            self.checkouts_total += 1
            if request_id is not None:
                self._owned.setdefault(request_id, []).append(co)
        if connect_id is not None and current.is_recording():
            current.set_attribute(ATTR_POOL_NAME, self.name)
            current.set_attribute(ATTR_NEW_CONNECTION, new_connection)
            if wait is not None:
                current.set_attribute(ATTR_WAIT_NS, wait)
        if request is not None and request.is_recording():
            attrs = request.attributes or {}
            request.set_attribute(ATTR_CHECKOUTS, int(attrs.get(ATTR_CHECKOUTS, 0)) + 1)
            if wait is not None:
                request.set_attribute(ATTR_WAIT_NS, int(attrs.get(ATTR_WAIT_NS, 0)) + wait)

    def _on_checkin(self, dbapi_connection: Any, connection_record: Any) -> None:
        returned = time.time_ns()
        with self._lock:
            co = self._open.pop(id(connection_record), None)
        if co is None:
            return
        co.returned_ns = returned
        outcome = "returned" if dbapi_connection is not None else "invalidated"
        self._write_checkout(co, outcome=outcome, returned_ns=returned, error=None)

    def _on_timeout(self, start: int, exc: BaseException) -> None:
        now = time.time_ns()
        current, request, trace_id, route, connect_id = self._context()
        with self._lock:
            self.timeouts_total += 1
        co = _Checkout(
            trace_id=trace_id,
            request_span_id=request.context.span_id if request is not None else None,
            connect_span_id=connect_id,
            span_id=_hex_span(current.get_span_context().span_id) if current else None,
            route=str(route) if route is not None else None,
            request_name=request.name if request is not None else None,
            start_ns=start,
            acquired_ns=0,
            wait_ns=now - start,
            new_connection=False,
            location=caller_location(),
            thread=threading.current_thread().name,
        )
        self._write_checkout(co, outcome="timeout", returned_ns=None, error=str(exc))
        if request is not None and request.is_recording():
            attrs = request.attributes or {}
            request.set_attribute(ATTR_TIMEOUTS, int(attrs.get(ATTR_TIMEOUTS, 0)) + 1)
            request.set_attribute(ATTR_WAIT_NS, int(attrs.get(ATTR_WAIT_NS, 0)) + (now - start))

    def _on_span_end(self, span_id: int, end_ns: int) -> None:
        with self._lock:
            owned = self._owned.pop(span_id, None)
            if not owned:
                return
            for co in owned:
                if co.returned_ns is None:
                    co.request_ended_ns = end_ns
                    self._suspects_pending.append(co)

    # -- periodic work -----------------------------------------------------

    def check_leaks(self, now: int, final: bool = False) -> None:
        """Report checkouts still out ``leak_grace`` after their request ended."""
        due: list[_Checkout] = []
        with self._lock:
            keep: list[_Checkout] = []
            for co in self._suspects_pending:
                if co.returned_ns is not None:
                    continue
                assert co.request_ended_ns is not None
                if final or now - co.request_ended_ns >= self._grace_ns:
                    co.leak_suspect = True
                    self.leak_suspects_total += 1
                    due.append(co)
                else:
                    keep.append(co)
            self._suspects_pending = keep
        for co in due:
            assert co.request_ended_ns is not None
            self._leaks.write(
                {
                    "detected_unix_nano": now,
                    "pid": self._pid,
                    "pool": self.name,
                    "trace_id": co.trace_id,
                    "request_span_id": _hex_span(co.request_span_id)
                    if co.request_span_id is not None
                    else None,
                    "connect_span_id": co.connect_span_id,
                    "span_id": co.span_id,
                    "route": co.route,
                    "request_name": co.request_name,
                    "location": co.location,
                    "thread": co.thread,
                    "checked_out_unix_nano": co.acquired_ns,
                    "request_end_unix_nano": co.request_ended_ns,
                    "held_ns": now - co.acquired_ns,
                }
            )

    def sample(self, now: int) -> dict[str, Any]:
        """The pool's state now, as one ``pool/samples.jsonl`` record."""
        pool: Any = self.engine.pool
        size = pool_value(pool, "size")
        max_overflow = getattr(pool, "_max_overflow", None)
        overflow = pool_value(pool, "overflow")
        checked_out = pool_value(pool, "checkedout")
        with self._lock:
            open_checkouts = len(self._open)
            suspects_open = sum(
                1 for co in self._open.values() if co.leak_suspect and co.returned_ns is None
            )
            waiters = self.waiters
        return {
            "time_unix_nano": now,
            "pid": self._pid,
            "pool": self.name,
            "pool_class": type(pool).__name__,
            "size": size,
            "max_overflow": max_overflow,
            "capacity": size + max_overflow
            if isinstance(size, int) and isinstance(max_overflow, int) and max_overflow >= 0
            else None,
            "checked_out": checked_out if isinstance(checked_out, int) else open_checkouts,
            "checked_in": pool_value(pool, "checkedin"),
            # SQLAlchemy's overflow() starts at -pool_size; we report connections
            # opened beyond pool_size, which is what a reader means by overflow.
            "overflow": max(0, overflow) if isinstance(overflow, int) else None,
            "waiters": waiters,
            "timeouts_total": self.timeouts_total,
            "checkouts_total": self.checkouts_total,
            "leak_suspects_open": suspects_open,
        }

    # -- output ------------------------------------------------------------

    def _write_checkout(
        self, co: _Checkout, *, outcome: str, returned_ns: int | None, error: str | None
    ) -> None:
        acquired = co.acquired_ns if outcome != "timeout" else None
        self._checkouts.write(
            {
                "pid": self._pid,
                "pool": self.name,
                "trace_id": co.trace_id,
                "request_span_id": _hex_span(co.request_span_id)
                if co.request_span_id is not None
                else None,
                "connect_span_id": co.connect_span_id,
                "span_id": co.span_id,
                "route": co.route,
                "request_name": co.request_name,
                "start_unix_nano": co.start_ns,
                "acquired_unix_nano": acquired,
                "returned_unix_nano": returned_ns,
                "wait_ns": co.wait_ns,
                "hold_ns": returned_ns - co.acquired_ns
                if returned_ns is not None and acquired is not None
                else None,
                "new_connection": co.new_connection,
                "location": co.location,
                "thread": co.thread,
                "outcome": outcome,
                "error": error,
                "leak_suspect": co.leak_suspect,
                "request_end_unix_nano": co.request_ended_ns,
            }
        )


def pool_value(obj: Any, name: str) -> Any:
    """``pool.name()``, or the attribute itself where it is no method.

    Pool classes disagree: QueuePool has ``size()``, SingletonThreadPool a
    plain ``size`` int, NullPool no ``checkedout()`` at all.
    """
    value = getattr(obj, name, None)
    if not callable(value):
        return value
    try:
        return value()
    except NotImplementedError:
        return None
