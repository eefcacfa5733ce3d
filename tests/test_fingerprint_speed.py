"""Fingerprint every distinct statement of a generated load-test file; report the rate.

Not a timed assertion: the figure is printed (``pytest -s``) and attached to the report.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from correlate.fingerprint import fingerprint_many

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_otlp.py"


def _gen() -> ModuleType:
    # Same loading as tests/test_gen_otlp.py: benchmarks/ is not a package.
    if "gen_otlp" in sys.modules:
        return sys.modules["gen_otlp"]
    spec = importlib.util.spec_from_file_location("gen_otlp", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_otlp"] = module
    spec.loader.exec_module(module)
    return module


def _statements(path: Path) -> set[tuple[str, str | None]]:
    out: set[tuple[str, str | None]] = set()
    with path.open(encoding="ascii") as f:
        for line in f:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        attrs = {
                            kv["key"]: next(iter(kv["value"].values()))
                            for kv in span.get("attributes", [])
                        }
                        text = attrs.get("db.statement") or attrs.get("db.query.text")
                        if text:
                            system = attrs.get("db.system") or attrs.get("db.system.name")
                            out.add((text, system))
    return out


def test_generated_run_collapses_to_its_shapes(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    gen = _gen()
    path = tmp_path / "spans.jsonl"
    gen.generate(path, spans=40_000, jobs=1)
    statements = _statements(path)
    assert len(statements) > 1_000  # IN-list and VALUES sizes, inlined literals

    start = time.perf_counter()
    fps = fingerprint_many(statements)
    seconds = time.perf_counter() - start

    rate = len(statements) / seconds
    record_property("statements_per_second", round(rate))
    print(
        f"\nfingerprinted {len(statements)} distinct statements in {seconds:.2f} s "
        f"({rate:,.0f}/s): {len({f.id for f in fps.values()})} fingerprints, {dict(fps.counts())}"
    )
    # Every text the generator renders from one shape must collapse to that shape, and no
    # two shapes may merge: exactly one fingerprint per shape that occurs.
    assert len({f.id for f in fps.values()}) == len(gen.SHAPES)
    assert fps.counts()["fallback"] == 0
