"""The demo service's settings, passed as JSON from the runner to the service process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from correlate.demo.faults import Faults
from correlate.demo.shop import DEFAULT_SCHEMA

CONFIG_ENV = "CORRELATE_DEMO_APP_CONFIG"


@dataclass
class AppConfig:
    """Everything the service process needs; passed as JSON between processes."""

    dsn: str
    port: int
    run_dir: str | None = None
    record: bool = True
    #: "correlate" (correlate.instrument) or "otel" (stock OpenTelemetry, nothing of ours)
    instrument: str = "correlate"
    faults: dict[str, bool] = field(default_factory=lambda: asdict(Faults()))
    schema: str = DEFAULT_SCHEMA
    pool_size: int = 5
    max_overflow: int = 5
    pool_timeout: float = 2.5
    threads: int = 32
    sqlcommenter: bool = False
    service_name: str = "checkout"
    load_profile: dict[str, Any] | None = None
    run_info: dict[str, Any] | None = None
    parent_pid: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AppConfig:
        return cls(**json.loads(text))
