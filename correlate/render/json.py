"""The report as JSON: schema ``correlate.report/1`` (docs/report-json.md).

:func:`plain` is the one JSON cleaner: the diff's JSON and ``plans coverage
--format json`` use it too. Strings are kept exactly as the trace had them.
Values are plain JSON: NaN, infinities and missing values become ``null``,
numpy scalars and arrays become numbers and lists, times become ISO 8601 text.
The output is strict JSON (``json.dumps(allow_nan=False)``).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from correlate.render.words import headline, notes, time_split

if TYPE_CHECKING:
    import pandas as pd

    from correlate.analysis.evidence import Evidence
    from correlate.analysis.verdict import Analysis

SCHEMA = "correlate.report/1"
#: Row lists longer than this are cut; ``truncated`` says how many rows there were.
MAX_ROWS = 500


def render(report: Evidence | Analysis, *, indent: int | None = 2) -> str:
    """The report as a JSON document (text)."""
    return json.dumps(document(report), indent=indent, allow_nan=False, ensure_ascii=False) + "\n"


def document(report: Evidence | Analysis) -> dict[str, Any]:
    """The report as JSON-ready Python values."""
    from correlate.analysis.evidence import evidence_of
    from correlate.version import __version__

    data = evidence_of(report)
    a = data.analysis
    truncated: dict[str, int] = {}
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "generator": {"name": "correlate", "version": __version__},
        "run": a.run,
        "headline": headline(a.summary),
        "time_split": time_split(a.summary) or None,
        "notes": notes(a.summary, a.queries.empty),
        "summary": plain(a.summary),
        "findings": [plain(f.to_dict()) for f in a.findings],
        "routes": _rows(a.routes, "routes", truncated),
        "queries": _rows(a.queries, "queries", truncated),
        "breakdowns": {
            str(route): _rows(frame, f"breakdowns.{route}", truncated)
            for route, frame in a.breakdowns.items()
        },
        "timeline": _rows(a.timeline, "timeline", truncated),
        "route_timeline": _rows(data.route_timeline, "route_timeline", truncated),
        "plans": [
            {
                "fingerprint": p.fingerprint,
                "plan_id": p.plan_id,
                "source": p.source,
                "analyzed": p.analyzed,
                "normalized": p.normalized,
                "nodes": _rows(p.nodes, f"plans.{p.fingerprint}.nodes", truncated),
                "insights": _rows(p.insights, f"plans.{p.fingerprint}.insights", truncated),
            }
            for p in data.plans
        ],
        "examples": [
            {
                "trace_id": w.trace_id,
                "route": w.route,
                "duration_ms": plain(w.duration_ms),
                "why": w.why,
                "spans": _rows(w.spans, f"examples.{w.trace_id}", truncated),
                "more_spans": w.more,
            }
            for w in data.examples
        ],
        "gaps": list(a.gaps),
    }
    doc["truncated"] = truncated
    return doc


def _rows(frame: pd.DataFrame, name: str, truncated: dict[str, int]) -> list[dict[str, Any]]:
    if len(frame) > MAX_ROWS:
        truncated[name] = len(frame)
        frame = frame.head(MAX_ROWS)
    return [plain(row) for row in frame.to_dict(orient="records")]


def plain(value: Any) -> Any:
    """``value`` as plain JSON values: NaN/NA → None, numpy → Python, times → ISO text.

    >>> import numpy as np, pandas as pd
    >>> plain({"a": np.float64("nan"), "b": np.array([1, 2]), "c": pd.NA, "d": np.int64(3)})
    {'a': None, 'b': [1, 2], 'c': None, 'd': 3}
    """
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain(float(value))
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    return str(value)
