"""``run_demo()``: seed the shop, serve it, load it with Locust, stop everything."""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from correlate.demo.config import CONFIG_ENV, AppConfig
from correlate.demo.errors import DemoError
from correlate.demo.faults import Faults
from correlate.demo.shop import DEFAULT_SCHEMA, Scale, seed
from correlate.demo.watching import Watcher, start_watcher, watch_cost
from correlate.instrument.runinfo import update_run_json
from correlate.redact import redact_url, scrub, url_secrets
from correlate.watch.records import ACTIVITY_FILE

logger = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOAD_ENV = "CORRELATE_DEMO_LOAD"
# Files of a run that run_demo itself writes (or has its children write); only
# these are removed by overwrite=True, never anything else in ``out``.
RUN_ENTRIES = (
    "run.json",
    "spans",
    "metrics",
    "db",
    "pool",
    "load",
    "logs",
    "demo.sqlite",
    "demo.sqlite-wal",
    "demo.sqlite-shm",
)


@dataclass
class DemoResult:
    """What a demo run produced and how the load went (from Locust's CSV)."""

    out: Path
    dsn: str
    faults: Faults
    duration_s: float
    users: int
    elapsed_s: float
    seed_s: float
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    locust_returncode: int | None
    app_returncode: int | None
    per_route: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        faults = ", ".join(self.faults.enabled()) or "none (fixed)"
        lines = [
            f"demo run in {self.out} against {self.dsn}",
            f"faults: {faults}; {self.users} users for {self.duration_s:g} s "
            f"(took {self.elapsed_s:.1f} s, seeding {self.seed_s:.1f} s)",
            f"{self.requests} requests, {self.failures} failed, {self.rps:.1f} req/s, "
            f"p50 {_ms(self.p50_ms)}, p95 {_ms(self.p95_ms)}",
        ]
        for name, row in self.per_route.items():
            lines.append(
                f"  {name}: {row['requests']} req, {row['failures']} failed, "
                f"p50 {_ms(row['p50_ms'])}, p95 {_ms(row['p95_ms'])}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from correlate.render.escape import html as escape

        return f"<pre>{escape(self.summary())}</pre>"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} ms"


#: The load shapes of :func:`load_stages`.
SHAPES = ("stages", "constant", "surge")


def load_stages(duration: float, users: int, shape: str = "stages") -> list[dict[str, float]]:
    """The user count over time: ramp up 20 %, steady 60 %, ramp down 20 %.

    ``shape="constant"`` starts all users at once and keeps them (benchmarks).
    ``shape="surge"`` is a peak that passes: up to ``users`` in 15 %, held for
    35 %, down to a quarter of them for the next 35 %, then none.

    >>> [(s["until_s"], s["users"]) for s in load_stages(100, 40, "surge")]
    [(15.0, 40), (50.0, 40), (85.0, 10), (100.0, 0)]
    """
    if shape == "constant":
        return [{"until_s": duration, "users": users, "spawn_rate": max(users, 1) * 10}]
    if shape not in SHAPES:
        raise DemoError(f"unknown load shape {shape!r}; use one of {', '.join(SHAPES)}")
    if shape == "surge":
        up = max(duration * 0.15, 1.0)
        rate = round(max(users / up, 0.1), 3)
        return [
            {"until_s": round(up, 3), "users": users, "spawn_rate": rate},
            {"until_s": round(duration * 0.5, 3), "users": users, "spawn_rate": rate},
            {"until_s": round(duration * 0.85, 3), "users": max(users // 4, 1), "spawn_rate": rate},
            {"until_s": round(float(duration), 3), "users": 0, "spawn_rate": rate},
        ]
    ramp = max(duration * 0.2, 1.0)
    rate = max(users / ramp, 0.1)
    return [
        {"until_s": round(ramp, 3), "users": users, "spawn_rate": round(rate, 3)},
        {"until_s": round(duration - ramp, 3), "users": users, "spawn_rate": round(rate, 3)},
        {"until_s": round(duration, 3), "users": 0, "spawn_rate": round(rate, 3)},
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_demo_packages() -> None:
    # find_spec, not import: importing locust monkey-patches the whole process
    # with gevent.
    missing = []
    for module in (
        "flask",
        "waitress",
        "locust",
        "opentelemetry.instrumentation.flask",
        "opentelemetry.instrumentation.urllib",
    ):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a parent package is missing
            found = None
        if found is None:
            missing.append(module)
    if missing:
        raise DemoError(
            f"the demo needs {', '.join(missing)}; install them with: pip install 'correlate[demo]'"
        )


def _prepare_out(out: Path, overwrite: bool) -> None:
    if (out / "run.json").exists() or (out / "spans").exists():
        if not overwrite:
            raise DemoError(
                f"{out} already holds a run; pass overwrite=True (--overwrite) or choose another directory"
            )
        for name in RUN_ENTRIES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    for sub in ("spans", "pool", "load", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(
                f"the demo service exited with code {proc.returncode} before serving; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise DemoError(f"the demo service did not answer {url} within {timeout:g} s; see {log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None, name: str, grace: float) -> int | None:
    """SIGTERM (SIGINT for Locust), wait ``grace`` s, then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        first = signal.SIGINT if name == "locust" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %d) did not stop within %g s; killing it", name, proc.pid, grace
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def _gzip_jsonl(out: Path) -> None:
    """Replace every ``*.jsonl`` under ``out`` by a reproducible ``*.jsonl.gz``."""
    for path in sorted(out.rglob("*.jsonl")):
        target = path.with_name(path.name + ".gz")
        # mtime=0 and no file name in the header: same content, same bytes.
        with (
            path.open("rb") as src,
            target.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
        ):
            shutil.copyfileobj(src, gz)
        path.unlink()


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_locust_stats(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    total: dict[str, Any] = {
        "requests": 0,
        "failures": 0,
        "rps": 0.0,
        "p50_ms": None,
        "p95_ms": None,
    }
    routes: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return total, routes
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            entry = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": _float(row["Requests/s"]) or 0.0,
                "p50_ms": _float(row["50%"]),
                "p95_ms": _float(row["95%"]),
            }
            if row["Name"] == "Aggregated":
                total = entry
            else:
                routes[f"{row['Type']} {row['Name']}"] = entry
    return total, routes


def run_demo(
    out: str | os.PathLike[str],
    dsn: str | None = None,
    duration: float = 60,
    users: int = 20,
    fixed: bool = False,
    *,
    faults: Faults | None = None,
    orders: int = 200_000,
    seed_value: int = 42,
    record: bool = True,
    instrument: str = "correlate",
    sqlcommenter: bool = False,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 2.5,
    threads: int = 32,
    think_time: tuple[float, float] = (0.25, 0.75),
    decline_share: float = 0.05,
    request_timeout: float = 60.0,
    shape: str = "stages",
    schema: str = DEFAULT_SCHEMA,
    compress: bool = False,
    overwrite: bool = False,
    margin: float = 30.0,
    watch: bool = False,
    port: int | None = None,
) -> DemoResult:
    """Run the demo checkout service under Locust load and record the run into ``out``.

    Seeds the shop deterministically (``orders`` rows in ``orders``, seed
    ``seed_value``), starts the service on 127.0.0.1 on a free port in a separate
    process with :func:`correlate.instrument.record` (unless ``record=False``),
    runs Locust headless for ``duration`` seconds with ``users`` shoppers (ramp
    up 20 %, steady, ramp down 20 %; ``shape="constant"`` for no ramps; each gives up
    on a request after ``request_timeout`` seconds), then stops
    both processes so every span is flushed. Every process started is stopped,
    also on KeyboardInterrupt and on failure.

    ``dsn`` is a SQLAlchemy URL (PostgreSQL, MariaDB/MySQL or SQLite); the default
    is a SQLite file ``out/demo.sqlite``. ``fixed=True`` turns every planted
    fault off; ``faults`` picks them one by one and wins over ``fixed``.
    ``compress=True`` gzips the JSON Lines files afterwards (``*.jsonl.gz``).
    ``instrument="otel"`` records the service with stock OpenTelemetry only (the
    SDK, the official SQLAlchemy, Flask and urllib instrumentations, the OTLP JSON file
    exporter; :mod:`correlate.demo.otel`) instead of ``correlate.instrument``.
    ``watch=True`` runs ``correlate watch`` beside the load (PostgreSQL or
    MariaDB/MySQL ``dsn`` only), writing ``db/activity.jsonl``; its cost goes
    into run.json (``watch``). The service listens on ``port`` (default: a free one).

    Raises :class:`correlate.demo.errors.DemoError` when the run cannot be set
    up (missing packages, ``out`` already holding a run, the service not starting).
    """
    from correlate.demo.otel import INSTRUMENTS

    if instrument not in INSTRUMENTS:
        raise DemoError(f"instrument must be one of {', '.join(INSTRUMENTS)}, not {instrument!r}")
    _require_demo_packages()
    if watch and (dsn is None or dsn.startswith("sqlite")):
        raise DemoError("watch=True needs a PostgreSQL or MariaDB/MySQL dsn, not SQLite")
    out_path = Path(out)
    chosen = faults if faults is not None else (Faults.none() if fixed else Faults.all())
    _prepare_out(out_path, overwrite)
    if dsn is None:
        dsn = f"sqlite:///{(out_path / 'demo.sqlite').resolve()}"
    scale = Scale(orders)
    stages = load_stages(duration, users, shape)
    load_profile = {
        "tool": "locust",
        "shape": shape,
        "users": users,
        "duration_s": duration,
        "stages": stages,
        "think_time_s": list(think_time),
        "decline_share": decline_share,
        "request_timeout_s": request_timeout,
        "task_weights": {
            "/products/<int:product_id>": 30,
            "/health": 5,
            "/customers/<int:customer_id>/orders": 20,
            "/orders/recent": 10,
            "/checkout": 15,
        },
    }
    demo_info = {
        "faults": asdict(chosen),
        "orders": scale.orders,
        "customers": scale.customers,
        "products": scale.products,
        "seed": seed_value,
        "schema": schema,
        "pool": {"size": pool_size, "max_overflow": max_overflow, "timeout_s": pool_timeout},
        "server_threads": threads,
    }

    from sqlalchemy.exc import SQLAlchemyError

    try:
        seed_s = seed(
            dsn, orders=orders, seed=seed_value, missing_index=chosen.missing_index, schema=schema
        )
    except (SQLAlchemyError, ImportError) as exc:  # no server, no driver: say which
        raise DemoError(
            f"cannot seed the demo database {redact_url(dsn)}: {scrub(str(exc), url_secrets(dsn))}"
        ) from exc

    port = port or _free_port()
    host = f"http://127.0.0.1:{port}"
    config = AppConfig(
        dsn=dsn,
        port=port,
        run_dir=str(out_path.resolve()),
        record=record,
        instrument=instrument,
        faults=asdict(chosen),
        schema=schema,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        threads=threads,
        sqlcommenter=sqlcommenter,
        load_profile=load_profile,
        run_info={"demo": demo_info},
        parent_pid=os.getpid(),
    )
    app_log_path = out_path / "logs" / "app.log"
    locust_log_path = out_path / "logs" / "locust.log"
    settings = {
        "request_log": str((out_path / "load" / "requests.jsonl").resolve()),
        "stages": stages,
        "seed": seed_value,
        "customers": scale.customers,
        "products": scale.products,
        "decline_share": decline_share,
        "think_time": list(think_time),
        "request_timeout_s": request_timeout,
    }
    app: subprocess.Popen[bytes] | None = None
    locust: subprocess.Popen[bytes] | None = None
    watcher: Watcher | None = None
    watched: dict[str, float | None] | None = None
    logs: list[IO[bytes]] = []
    locust_rc: int | None = None
    app_rc: int | None = None
    began = time.monotonic()
    elapsed = 0.0
    try:
        app_log = app_log_path.open("ab")
        logs.append(app_log)
        env = dict(os.environ, **{CONFIG_ENV: config.to_json()})
        # A session of their own: Ctrl-C reaches only us, and we stop the
        # children in order (load first, then the service so it can flush).
        app = subprocess.Popen(
            [sys.executable, "-m", "correlate.demo.app"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=app_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_ready(port, app, app_log_path, timeout=60)
        locust_out = locust_log_path.open("ab")
        logs.append(locust_out)
        if watch:
            watch_log = (out_path / "logs" / "watch.log").open("ab")
            logs.append(watch_log)
            watcher = start_watcher(dsn, out_path, watch_log)
        locust_env = dict(os.environ, **{LOAD_ENV: json.dumps(settings)})
        locust_env.pop(CONFIG_ENV, None)
        began = time.monotonic()
        locust = subprocess.Popen(
            [
                sys.executable, "-m", "locust",
                "-f", str(LOCUSTFILE),
                "--headless",
                "--host", host,
                "--csv", str(out_path / "load" / "locust"),
                "--csv-full-history",
                "--only-summary",
                "--loglevel", "INFO",
            ],
            env=locust_env,
            stdin=subprocess.DEVNULL,
            stdout=locust_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            locust_rc = locust.wait(timeout=duration + margin)
        except subprocess.TimeoutExpired:
            logger.warning("locust ran past %g s + %g s margin; stopping it", duration, margin)
        elapsed = time.monotonic() - began
    finally:
        locust_rc = _stop(locust, "locust", grace=15)
        if watcher is not None:
            cpu = watcher.cpu_s()
            _stop(watcher.proc, "watch", grace=10)
            watched = watch_cost(watcher, cpu, out_path / ACTIVITY_FILE)
        app_rc = _stop(app, "app", grace=30)
        for fh in logs:
            fh.close()
    if app_rc not in (0, None):
        logger.warning("the demo service exited with code %s; see %s", app_rc, app_log_path)

    total, routes = _read_locust_stats(out_path / "load" / "locust_stats.csv")
    update_run_json(
        out_path,
        {
            "load": {
                **load_profile,
                "host": host,
                "elapsed_s": round(elapsed, 3),
                "locust_returncode": locust_rc,
            },
            "demo": {
                **demo_info,
                "dsn": redact_url(dsn),
                "recorded": record,
                "instrument": instrument,
            },
            **({"watch": watched} if watched is not None else {}),
        },
    )
    if compress:
        _gzip_jsonl(out_path)
    result = DemoResult(
        out=out_path,
        dsn=redact_url(dsn),
        faults=chosen,
        duration_s=duration,
        users=users,
        elapsed_s=elapsed,
        seed_s=seed_s,
        requests=int(total["requests"]),
        failures=int(total["failures"]),
        rps=float(total["rps"]),
        p50_ms=total["p50_ms"],
        p95_ms=total["p95_ms"],
        locust_returncode=locust_rc,
        app_returncode=app_rc,
        per_route=routes,
    )
    logger.info("%s", result.summary())
    return result
