"""Detector settings: defaults, the project file, ``settings=`` and ``--set``, and their checks."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import correlate
from correlate.analysis import open_run
from correlate.analysis.detectors import DETECTORS, n_plus_one
from correlate.analysis.findings import SEVERITIES, Finding, rank
from correlate.analysis.settings import (
    Settings,
    parse_assignments,
    resolve_settings,
    settings_parameters,
)
from correlate.cli import cli
from correlate.diff.rules import RULE_FORMS, parse_rules
from correlate.errors import CorrelateError, SettingsError
from correlate.kinds import FindingKind
from correlate.severity import Severity

from .builders import RunBuilder

DETECTOR_DIR = Path(correlate.__file__).parent / "analysis" / "detectors"

#: Every threshold as it was when they were module constants: the defaults must not drift.
DEFAULTS: dict[str, dict[str, Any]] = {
    "degradation": {"plateau": 0.9, "min_plateau_windows": 6, "ratio": 2.0, "min_ms": 50.0},
    "error_bursts": {
        "rise": 0.10,
        "baseline_windows": 3,
        "min_errors": 3,
        "critical_share": 0.05,
        "high_start_rate": 0.15,
        "start_requests": 100,
        "pool_share": 0.5,
    },
    "fan_out": {
        "max_children": 20,
        "critical_children": 60,
        "min_request_share": 0.05,
        "one_shape_share": 0.8,
        "projection_factor": 10.0,
    },
    "n_plus_one": {
        "min_calls": 5,
        "min_union_ms": 50.0,
        "critical_calls": 10,
        "min_time_share": 0.1,
        "projection_factor": 10.0,
        "projected_busy": 1.0,
        "min_request_share": 0.05,
    },
    "database_stall": {
        "min_gap_s": 2.0,
        "gap_factor": 10.0,
        "min_queries": 50,
        "min_requests": 10,
        "min_in_flight": 3,
    },
    "outside_server": {
        "min_outside_ms": 50.0,
        "min_outside_share": 0.5,
        "min_lost_share": 0.01,
        "min_lost": 5,
    },
    "pool_exhaustion": {
        "min_wait_share": 0.10,
        "min_wait_ms": 10.0,
        "critical_wait_share": 0.25,
        "recovery_load": 0.75,
        "recovery_wait": 0.5,
        "sample_slack_s": 1.0,
        "tracks_load": 0.5,
        "min_waits": 20,
        "window_s": 5.0,
        "min_windows": 3,
        "min_window_waits": 3,
        "capacity_loss": 0.3,
        "full_slack": 1,
        "saturated_share": 0.8,
        "min_waits_after_drop": 3,
        "max_p_value": 0.01,
        "min_drops": 2,
        "min_idle_at_max_s": 3.0,
        "held_factor": 2.0,
        "min_held_s": 5.0,
        "match_ms": 50.0,
        "min_unended": 2,
        "max_unended_share": 0.5,
        "route_share": 0.67,
        "end_grace_s": 2.0,
        "latency_rise": 1.5,
        "min_lost_connections": 3,
        "min_stall_ms": 1000.0,
        "min_stalled": 3,
    },
    "redundant_calls": {
        "min_calls": 2,
        "warning_calls": 5,
        "min_time_share": 0.1,
        "projection_factor": 10.0,
    },
    "slow_query": {
        "min_share": 0.5,
        "min_call_ms": 20.0,
        "critical_share_of_latency": 0.5,
        "min_requests": 5,
        "min_planned_call_ms": 1.0,
        "critical_rows_read": 1_000_000.0,
    },
    "slow_downstream": {
        "min_share": 0.5,
        "min_call_ms": 100.0,
        "critical_share_of_latency": 0.8,
        "min_requests": 5,
    },
    "lock_contention": {
        "min_contended": 10,
        "min_queued_share": 0.8,
        "growth_ratio": 2.0,
        "min_wait_ms": 2.0,
        "min_share": 0.01,
        "warning_share": 0.05,
        "critical_share": 0.25,
        "tolerance_ms": 1.0,
        "min_uncontended": 5,
        "min_requests": 5,
        "min_held_call_ms": 10.0,
    },
    "section_contention": {
        "min_contended": 10,
        "min_queued_share": 0.8,
        "spacing": 0.8,
        "handoff_ms": 2.0,
        "growth_ratio": 1.25,
        "min_wait_ms": 2.0,
        "min_share": 0.01,
        "warning_share": 0.05,
        "critical_share": 0.25,
        "tolerance_ms": 1.0,
        "min_uncontended": 5,
    },
    "throughput_knee": {
        "efficiency": 0.7,
        "latency_ratio": 2.0,
        "baseline_windows": 3,
        "growth_ms": 10.0,
    },
    "unexplained_time": {
        "min_share": 0.5,
        "min_app_ms": 50.0,
        "min_requests": 10,
        "queue_share": 0.5,
    },
}


def listing_run(calls: int = 3, each: float = 20) -> RunBuilder:
    """Ten /list requests, each running one item query ``calls`` times under the request."""
    b = RunBuilder()
    for i in range(10):
        trace = f"t{i}"
        start = i * 1000.0
        r = b.request(trace, start, start + 20 + calls * (each + 2), "/list")
        at = start + 10
        for n in range(calls):
            b.query(trace, r, at, at + each, f"SELECT * FROM items WHERE order_id = {n}")
            at += each + 2
    return b


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A store file holding run ``r``: an N+1 of 3 calls, under the default 5."""
    path = tmp_path / "store.duckdb"
    with correlate.open_store(path) as store:
        listing_run().build(store)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory, made the current one, so no outer config applies."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def kinds(findings: list[Finding]) -> list[str]:
    return [str(f.kind) for f in findings]


# -- enums ---------------------------------------------------------------------------------


def test_enum_values_are_the_strings_reports_always_had() -> None:
    assert [s.value for s in Severity] == ["critical", "warning", "info"]
    assert SEVERITIES == ("critical", "warning", "info")
    assert {k.value for k in FindingKind} == {
        "pool_leak",
        "pool_saturation",
        "pool_exhausted",
        "n_plus_one",
        "n_plus_one_calls",
        "redundant_calls",
        "fan_out",
        "slow_query",
        "slow_downstream",
        "lock_contention",
        "section_contention",
        "error_burst",
        "error_rate",
        "degradation",
        "throughput_knee",
        "unexplained_time",
        "outside_server",
        "never_reached",
        "database_stall",
    }
    assert json.dumps([Severity.WARNING, FindingKind.N_PLUS_ONE]) == '["warning", "n_plus_one"]'


def test_severity_orders_by_urgency_not_alphabet() -> None:
    assert Severity.CRITICAL > Severity.WARNING > Severity.INFO
    assert Severity.INFO < "warning" and Severity.CRITICAL >= "critical"
    assert max(Severity) is Severity.CRITICAL
    with pytest.raises(ValueError, match="critical, warning, info"):
        Severity.parse("fatal")


def test_finding_takes_plain_strings_and_serialises_them_back() -> None:
    f = Finding("n_plus_one", "warning", "t", "e", "s", "th", "src")
    assert f.kind is FindingKind.N_PLUS_ONE and f.severity is Severity.WARNING
    mine = Finding("my_rule", "info", "t", "e", "s", "th", "src")  # a detector of one's own
    assert mine.kind == "my_rule" and not isinstance(mine.kind, FindingKind)
    d = f.to_dict()
    assert type(d["kind"]) is str and type(d["severity"]) is str
    with pytest.raises(ValueError, match="severity must be one of"):
        Finding("n_plus_one", "urgent", "t", "e", "s", "th", "src")
    info = Finding("a", "info", "t", "e", "s", "th", "src", impact_ms=99)
    crit = Finding("b", "critical", "t", "e", "s", "th", "src", impact_ms=1)
    assert rank([info, crit]) == [crit, info]


def test_plan_insights_use_the_same_severity() -> None:
    from correlate.plans import find_insights, parse_plan

    plan = parse_plan(
        [
            {
                "Plan": {
                    "Node Type": "Sort",
                    "Sort Method": "external merge",
                    "Sort Space Type": "Disk",
                    "Sort Space Used": 2048,
                    "Actual Rows": 10,
                    "Actual Loops": 1,
                }
            }
        ]
    )
    (insight,) = find_insights(plan)
    assert insight.severity is Severity.WARNING


# -- settings: defaults, keys, checks ---------------------------------------------------


def test_defaults_are_the_thresholds_detectors_always_used() -> None:
    assert Settings().to_dict() == DEFAULTS
    assert Settings().changed() == {}


def test_every_detector_with_thresholds_takes_its_section() -> None:
    sections = {
        kind.section  # type: ignore[attr-defined]
        for detector in DETECTORS
        for kind in settings_parameters(detector).values()
    }
    assert sections == set(DEFAULTS)


def test_a_key_or_a_section_sets_a_value() -> None:
    s = Settings({"n_plus_one.min_calls": 3, "pool_exhaustion": {"min_wait_ms": 5}})
    assert s["n_plus_one.min_calls"] == 3
    assert s["pool_exhaustion.min_wait_ms"] == 5.0
    assert isinstance(s["pool_exhaustion.min_wait_ms"], float)  # an int widens to float
    assert s.changed() == {"n_plus_one.min_calls": 3, "pool_exhaustion.min_wait_ms": 5.0}
    later = s.with_values({"n_plus_one.min_calls": 4})
    assert later["n_plus_one.min_calls"] == 4 and s["n_plus_one.min_calls"] == 3


def test_unknown_key_is_an_error_listing_the_valid_keys_with_the_closest() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings({"n_plus_one.min_call": 3})
    message = str(caught.value)
    assert "unknown key 'n_plus_one.min_call'" in message
    assert "did you mean 'n_plus_one.min_calls'?" in message
    for key in DEFAULTS["n_plus_one"]:
        assert f"n_plus_one.{key}" in message
    assert isinstance(caught.value, CorrelateError)
    assert set(caught.value.valid) == set(Settings().keys())


def test_unknown_section_lists_every_key() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings({"n_plus_on.min_calls": 3})
    message = str(caught.value)
    assert "did you mean 'n_plus_one.min_calls'?" in message
    for section, fields in DEFAULTS.items():
        for key in fields:
            assert f"{section}.{key}" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n_plus_one.min_calls", "5; DROP TABLE spans", "must be a whole number"),
        ("n_plus_one.min_union_ms", "50) OR (1=1", "must be a number"),
        ("n_plus_one.min_calls", 5.5, "must be a whole number"),
        ("n_plus_one.min_calls", True, "must be a whole number"),
        ("n_plus_one.min_calls", None, "must be a whole number"),
        ("slow_query.min_share", 1.5, "must be from 0 to 1"),
        ("unexplained_time.min_app_ms", -1, "must be at least 0"),
        ("n_plus_one.min_calls", 1, "must be at least 2"),
        ("degradation.min_ms", math.nan, "must be finite"),
        ("degradation.min_ms", math.inf, "must be finite"),
    ],
)
def test_bad_values_are_refused_before_they_reach_sql(key: str, value: Any, expected: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(expected)):
        Settings({key: value})


def test_set_texts_are_read_as_their_fields_type() -> None:
    assert parse_assignments(["n_plus_one.min_calls=3", "slow_query.min_share = 0.25"]) == {
        "n_plus_one.min_calls": 3,
        "slow_query.min_share": 0.25,
    }
    with pytest.raises(SettingsError, match="must be a whole number, not '3.5'"):
        parse_assignments(["n_plus_one.min_calls=3.5"])
    with pytest.raises(SettingsError, match="not KEY=VALUE"):
        parse_assignments(["n_plus_one.min_calls"])
    with pytest.raises(SettingsError, match="did you mean 'n_plus_one.min_calls'"):
        parse_assignments(["n_plus_one.mincalls=3"])


# -- no detector formats a value into SQL ---------------------------------------------------


def _sql_fstrings(tree: ast.AST) -> list[ast.JoinedStr]:
    keywords = re.compile(r"\b(SELECT|FROM|WHERE|HAVING|LIMIT)\b")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if keywords.search(text):
                found.append(node)
    return found


def _table_names(tree: ast.AST) -> set[str]:
    """Names bound to ``run.table(…)`` (or to a subquery f-string, itself checked)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            targets = (
                node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            )
            for target, value in zip(targets, values, strict=False):
                if isinstance(target, ast.Name) and (
                    _is_table_call(value) or isinstance(value, ast.JoinedStr)
                ):
                    names.add(target.id)
    return names


def _is_table_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "table"
    )


@pytest.mark.parametrize("path", sorted(DETECTOR_DIR.glob("*.py")), ids=lambda p: p.name)
def test_detector_sql_interpolates_table_names_only(path: Path) -> None:
    tree = ast.parse(path.read_text())
    allowed = _table_names(tree)
    for fstring in _sql_fstrings(tree):
        for part in fstring.values:
            if not isinstance(part, ast.FormattedValue):
                continue
            value = part.value
            ok = (
                _is_table_call(value)
                or (isinstance(value, ast.Name) and value.id in allowed)
                or _is_sql_twin(value)
            )
            assert ok, f"{path.name}:{part.lineno}: {ast.unparse(value)} formatted into SQL"


#: correlate.routes' SQL twins of its Python rules: given a column written out as a literal,
#: each returns fixed SQL, no value of the run's.
SQL_TWINS = frozenset({"route_sql", "path_template_sql"})


def _is_sql_twin(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in SQL_TWINS
        and not node.keywords
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
    )


def test_the_sql_check_takes_a_route_twin_of_a_literal_column_only() -> None:
    assert _is_sql_twin(ast.parse('route_sql("l.route")', mode="eval").body)
    assert not _is_sql_twin(ast.parse("route_sql(route)", mode="eval").body)
    assert not _is_sql_twin(ast.parse('other_sql("l.route")', mode="eval").body)


def test_the_sql_check_catches_a_formatted_threshold() -> None:
    bad = ast.parse(
        'parts = run.table("parts")\n'
        'run.con.execute(f"SELECT * FROM {parts} HAVING count(*) >= {s.min_calls}")\n'
    )
    allowed = _table_names(bad)
    formatted = [
        ast.unparse(p.value)
        for f in _sql_fstrings(bad)
        for p in f.values
        if isinstance(p, ast.FormattedValue)
        and not (isinstance(p.value, ast.Name) and p.value.id in allowed)
    ]
    assert formatted == ["s.min_calls"]


# -- the layers change the verdict -------------------------------------------------------


def test_python_settings_change_the_verdict(project: Path) -> None:
    with correlate.open_store(":memory:") as store:
        listing_run().build(store)
        assert "n_plus_one" not in kinds(correlate.analyze("r", store=store).findings)
        tuned = correlate.analyze("r", store=store, settings={"n_plus_one.min_calls": 3})
        (f,) = [f for f in tuned.findings if f.kind == FindingKind.N_PLUS_ONE]
        assert f.evidence["calls_per_request"] == 3
        assert f.threshold.startswith("≥ 3 calls of one shape")


def test_a_detector_called_directly_takes_its_settings() -> None:
    from correlate.analysis.detectors.n_plus_one import NPlusOneSettings

    store = listing_run().build()
    with open_run(store, "r") as run:
        assert n_plus_one(run) == []
        (f,) = n_plus_one(run, settings=NPlusOneSettings(min_calls=3))
        assert f.severity == Severity.WARNING
        (f,) = n_plus_one(run, settings=NPlusOneSettings(min_calls=3, critical_calls=3))
        assert f.severity == Severity.CRITICAL
    store.close()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", "[tool.correlate.n_plus_one]\nmin_calls = 3\n"),
        ("correlate.toml", "[n_plus_one]\nmin_calls = 3\n"),
        ("correlate.toml", "n_plus_one.min_calls = 3\n"),
    ],
)
def test_project_file_changes_the_verdict(project: Path, name: str, text: str) -> None:
    (project / name).write_text(text)
    with correlate.open_store(":memory:") as store:
        listing_run().build(store)
        assert "n_plus_one" in kinds(correlate.analyze("r", store=store).findings)
        # a Settings object is used as it is: the defaults, without the file
        plain = correlate.analyze("r", store=store, settings=Settings())
        assert "n_plus_one" not in kinds(plain.findings)


def test_project_file_is_found_from_a_subdirectory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text("[tool.correlate.n_plus_one]\nmin_calls = 3\n")
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    assert resolve_settings()["n_plus_one.min_calls"] == 3


def test_precedence_python_over_file_over_defaults(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.correlate.n_plus_one]\nmin_calls = 3\ncritical_calls = 4\n"
    )
    s = resolve_settings({"n_plus_one.critical_calls": 20})
    assert s.origins == (f"{project / 'pyproject.toml'} [tool.correlate]", "settings")
    assert s["n_plus_one.min_calls"] == 3  # the file
    assert s["n_plus_one.critical_calls"] == 20  # Python over the file
    assert s["n_plus_one.min_union_ms"] == 50.0  # the default


def test_settings_from_a_named_file(tmp_path: Path) -> None:
    path = tmp_path / "ci.toml"
    path.write_text("[slow_query]\nmin_call_ms = 5\n")
    s = Settings.from_file(path)
    assert s.changed() == {"slow_query.min_call_ms": 5.0}
    assert repr(s) == f"<Settings slow_query.min_call_ms=5.0 from {path}>"


def test_correlate_toml_wins_over_pyproject_in_one_directory(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.correlate.n_plus_one]\nmin_calls = 3\n")
    (project / "correlate.toml").write_text("[n_plus_one]\nmin_calls = 7\n")
    assert resolve_settings()["n_plus_one.min_calls"] == 7


def test_pyproject_without_a_correlate_table_is_passed_over(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert resolve_settings() == Settings()


def test_project_file_errors_name_the_file(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.correlate.n_plus_one]\nmin_cals = 3\n")
    with pytest.raises(SettingsError, match=r"pyproject.toml \[tool.correlate\]: unknown key"):
        resolve_settings()
    (project / "pyproject.toml").write_text("[tool.correlate.n_plus_one]\nmin_calls = 'many'\n")
    with pytest.raises(SettingsError, match="n_plus_one.min_calls must be a whole number"):
        resolve_settings()
    (project / "pyproject.toml").write_text("[tool.correlate\n")
    with pytest.raises(CorrelateError, match="not valid TOML"):
        resolve_settings()


# -- the CLI ------------------------------------------------------------------------------


def test_cli_set_changes_the_verdict(project: Path, store_file: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(cli, ["analyze", "r", "--db", str(store_file), "--no-color"])
    assert plain.exit_code == 0, plain.output
    assert "N+1" not in plain.output
    tuned = runner.invoke(
        cli,
        ["analyze", "r", "--db", str(store_file), "--no-color", "--set", "n_plus_one.min_calls=3"],
    )
    assert tuned.exit_code == 0, tuned.output
    assert "N+1 queries in /list" in tuned.output


def test_cli_set_overrides_the_project_file(project: Path, store_file: Path) -> None:
    (project / "correlate.toml").write_text("[n_plus_one]\nmin_calls = 3\n")
    runner = CliRunner()
    args = ["report", "r", "--db", str(store_file), "-o", str(project / "r.json")]
    assert runner.invoke(cli, args).exit_code == 0
    found = json.loads((project / "r.json").read_text())["findings"]
    assert "n_plus_one" in [f["kind"] for f in found]
    assert runner.invoke(cli, [*args, "--set", "n_plus_one.min_calls=4"]).exit_code == 0
    found = json.loads((project / "r.json").read_text())["findings"]
    assert "n_plus_one" not in [f["kind"] for f in found]


def test_cli_set_with_an_unknown_key_is_a_usage_error(project: Path, store_file: Path) -> None:
    result = CliRunner().invoke(
        cli, ["analyze", "r", "--db", str(store_file), "--set", "n_plus_one.min_call=3"]
    )
    assert result.exit_code == 2
    assert "did you mean 'n_plus_one.min_calls'?" in result.output
    assert "n_plus_one.min_union_ms" in result.output


def test_diff_with_settings_sees_findings_the_defaults_do_not(
    project: Path, tmp_path: Path
) -> None:
    db = tmp_path / "diff.duckdb"
    with correlate.open_store(db) as store:
        base = listing_run(calls=3)
        base.name = "base"
        base.build(store)
        cand = listing_run(calls=4)
        cand.name = "cand"
        cand.build(store)
    runner = CliRunner()
    args = ["diff", "base", "cand", "--db", str(db), "--fail-on", "new-finding:warning"]
    plain = runner.invoke(cli, args)
    assert plain.exit_code == 0, plain.output
    tuned = runner.invoke(cli, [*args, "--set", "n_plus_one.min_calls=4"])
    assert tuned.exit_code == 1, tuned.output
    assert "new-finding:warning: new warning finding: N+1 queries in /list" in tuned.output
    with correlate.open_store(db, read_only=True) as store:
        result = correlate.diff("base", "cand", store=store, settings={"n_plus_one.min_calls": 4})
    assert [f.kind for f in result.new_findings] == [FindingKind.N_PLUS_ONE]


def test_fail_on_help_lists_every_rule_form() -> None:
    result = CliRunner().invoke(cli, ["diff", "--help"])
    flat = " ".join(result.output.split())
    for example, _ in RULE_FORMS:
        assert example in flat.replace("- ", "-"), example
        parse_rules([example])
    assert "errors:+1%" in flat


# -- docs/rules.md ----------------------------------------------------------------------

RULES_DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def test_rules_doc_lists_every_key_with_its_default() -> None:
    text = RULES_DOC.read_text()
    for section, fields in Settings().to_dict().items():
        for name, default in fields.items():
            row = re.search(rf"^\| `{section}\.{name}` \| ([^|]+) \|", text, re.MULTILINE)
            assert row, f"{section}.{name} is not in docs/rules.md"
            assert row[1].split()[0] == repr(default), f"{section}.{name}: {row[1]}"


def test_rules_doc_has_a_heading_per_kind_and_a_row_per_plan_rule() -> None:
    from correlate.plans import RULES

    text = RULES_DOC.read_text()
    headings = set(re.findall(r"^### (\w+)$", text, re.MULTILINE))
    assert headings == {k.value for k in FindingKind}
    for rule in RULES:
        assert f"| `{rule.__name__}` |" in text, rule.__name__
    assert "## Plan insights" in text and "## Severities" in text


def test_every_finding_cites_its_rule_in_the_docs() -> None:
    """Each built-in detector's ``source`` points at its kind's section of docs/rules.md."""
    import inspect

    for path in sorted(DETECTOR_DIR.glob("*.py")):
        source = path.read_text()
        for anchor in re.findall(r"docs/rules\.md#(\w+)", source):
            assert anchor in {k.value for k in FindingKind}, f"{path.name}: #{anchor}"
    for detector in DETECTORS:
        assert "docs/rules.md" in inspect.getsource(inspect.getmodule(detector))  # type: ignore[arg-type]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_plans_and_the_vocabulary_sit_below_analysis() -> None:
    package = Path(correlate.__file__).parent
    for path in sorted((package / "plans").rglob("*.py")):
        bad = {m for m in _imports(path) if m.startswith("correlate.analysis")}
        assert not bad, f"{path.relative_to(package)} imports {bad}"
    for name in ("severity.py", "kinds.py"):
        assert not {m for m in _imports(package / name) if m.startswith("correlate")}, name


# -- review: exit codes, number syntax, contradictory pairs, project-file errors ------------


def _analyze(store_file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["analyze", "r", "--db", str(store_file), *args])
    assert not result.exception or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("n_plus_one.min_calls=3.5", "n_plus_one.min_calls must be a whole number, not '3.5'"),
        ("n_plus_one.min_union_ms=-5", "n_plus_one.min_union_ms must be at least 0, not -5.0"),
        ("n_plus_one.min_union_ms=nan", "n_plus_one.min_union_ms must be finite, not nan"),
        (
            "pool_exhaustion.min_wait_share=2",
            "pool_exhaustion.min_wait_share must be from 0 to 1, not 2.0",
        ),
        ("n_plus_one.min_calls=1", "n_plus_one.min_calls must be at least 2, not 1"),
    ],
)
def test_every_bad_set_value_is_a_usage_error(
    project: Path, store_file: Path, assignment: str, expected: str
) -> None:
    """A value out of range is as much a usage error as one of the wrong type: exit 2."""
    code, out = _analyze(store_file, "--set", assignment)
    assert code == 2, out
    assert f"Invalid value for --set: --set {assignment}: {expected}" in out


@pytest.mark.parametrize("raw", ["1_000", "٣", "0x10", "1e3", "five", ""])
def test_set_takes_plain_decimal_whole_numbers(raw: str) -> None:
    with pytest.raises(SettingsError, match="must be a whole number"):
        parse_assignments([f"n_plus_one.min_calls={raw}"])
    assert parse_assignments(["n_plus_one.min_calls= +7 "]) == {"n_plus_one.min_calls": 7}


@pytest.mark.parametrize("raw", ["1_000.5", "２.5", "0x1p3", "1,5"])
def test_set_takes_plain_decimal_numbers(raw: str) -> None:
    with pytest.raises(SettingsError, match="must be a number"):
        parse_assignments([f"n_plus_one.min_union_ms={raw}"])
    assert parse_assignments(["n_plus_one.min_union_ms=2.5e1", "slow_query.min_share=.5"]) == {
        "n_plus_one.min_union_ms": 25.0,
        "slow_query.min_share": 0.5,
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"n_plus_one.min_calls": 20},
            "settings: n_plus_one.min_calls (20, from settings) is above "
            "n_plus_one.critical_calls (10, the default)",
        ),
        (
            {"pool_exhaustion.min_wait_share": 0.9, "pool_exhaustion.critical_wait_share": 0.1},
            "settings: pool_exhaustion.min_wait_share (0.9, from settings) is above "
            "pool_exhaustion.critical_wait_share (0.1, from settings)",
        ),
    ],
)
def test_contradictory_pairs_are_refused(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(values)
    assert str(caught.value).startswith(expected)
    assert "must not be above" in str(caught.value)


def test_a_pair_is_checked_once_every_layer_is_in(project: Path, store_file: Path) -> None:
    """A file raising min_calls and --set raising critical_calls agree in the end."""
    (project / "correlate.toml").write_text("[n_plus_one]\nmin_calls = 20\n")
    s = resolve_settings({"n_plus_one.critical_calls": 30})
    assert (s["n_plus_one.min_calls"], s["n_plus_one.critical_calls"]) == (20, 30)
    with pytest.raises(SettingsError, match=r"min_calls \(20, from .*correlate.toml\) is above"):
        resolve_settings()
    code, out = _analyze(store_file)
    assert code == 2 and "n_plus_one.critical_calls (10, the default)" in out
    code, out = _analyze(store_file, "--set", "n_plus_one.critical_calls=30")
    assert code == 0, out
    code, out = _analyze(store_file, "--set", "n_plus_one.critical_calls=3")
    assert code == 2, out
    assert "n_plus_one.critical_calls (3, from --set n_plus_one.critical_calls=3)" in out


@pytest.mark.parametrize("bad", ["x", 3, ["n_plus_one.min_calls"]])
def test_settings_must_be_a_mapping(bad: Any) -> None:
    with correlate.open_store(":memory:") as store:
        listing_run().build(store)
        with pytest.raises(SettingsError, match="settings= takes a correlate.Settings or a"):
            correlate.analyze("r", store=store, settings=bad)


def test_project_file_errors_are_usage_errors(project: Path, store_file: Path) -> None:
    path = project / "correlate.toml"
    path.write_text("[n_plus_one\nmin_calls = 3\n")
    code, out = _analyze(store_file)
    assert code == 2
    assert out.startswith(f"Error: {path}: not valid TOML: ")
    path.write_text("[n_plus_one]\nmin_calls = 1\n")
    assert _analyze(store_file)[0] == 2
    result = CliRunner().invoke(cli, ["report", "r", "--db", str(store_file), "-o", "r.md"])
    assert result.exit_code == 2, result.output


def test_a_config_file_that_is_not_utf8_names_file_and_line(project: Path) -> None:
    path = project / "correlate.toml"
    path.write_bytes(b"[n_plus_one]\nmin_calls = 3 # \xff\xfe\n")
    with pytest.raises(SettingsError) as caught:
        resolve_settings()
    assert str(caught.value) == f"{path}:2: not UTF-8 text (byte 0xff); save it as UTF-8"


def test_a_directory_named_like_a_config_file_is_an_error(project: Path) -> None:
    (project / "correlate.toml").mkdir()
    with pytest.raises(SettingsError, match="correlate.toml: not a file"):
        resolve_settings()


def test_a_broken_pyproject_that_does_not_mention_correlate_is_passed_over(
    project: Path, store_file: Path
) -> None:
    """Another tool's broken pyproject.toml is that tool's to report; it holds no settings."""
    (project / "pyproject.toml").write_text("[project\nname = 'x'\n")
    assert resolve_settings() == Settings()
    assert _analyze(store_file)[0] == 0
    (project / "pyproject.toml").write_bytes(b"[project]\nname = '\xff'\n")
    assert resolve_settings() == Settings()
    # one that mentions correlate may hold its settings: that is an error
    (project / "pyproject.toml").write_text("[tool.correlate.n_plus_one\nmin_calls = 3\n")
    with pytest.raises(SettingsError, match="pyproject.toml: not valid TOML"):
        resolve_settings()
