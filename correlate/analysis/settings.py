"""Detector settings: every threshold a detector applies, with its default, tunable by key.

A detector with thresholds declares them as a frozen dataclass (its *section*) and
takes it as a keyword parameter whose default is that dataclass's defaults::

    @dataclass(frozen=True)
    class NPlusOneSettings:
        section: ClassVar[str] = "n_plus_one"
        min_calls: int = setting(5, "calls of one fingerprint under one parent")

    def n_plus_one(run: Run, settings: NPlusOneSettings = DEFAULTS) -> list[Finding]: ...

:meth:`Run.findings <correlate.analysis.run.Run.findings>` passes each such parameter
the section resolved from the layers below; called directly, a detector uses its
defaults. A key is ``<section>.<field>``, e.g. ``n_plus_one.min_calls``. Layers, the
later one winning:

1. the defaults (docs/rules.md lists them);
2. the project file: ``correlate.toml`` or ``[tool.correlate]`` in ``pyproject.toml``,
   found from the current directory up (:mod:`correlate.config`);
3. ``settings=`` in Python (a mapping of keys to values, layered over the file; a
   :class:`Settings` object is used as it is);
4. ``--set KEY=VALUE`` on the command line, which the CLI passes as ``settings=``.

Values are checked against the field's type and range; an unknown key or a bad value is
a :class:`~correlate.errors.SettingsError` that lists the valid keys. A section may name
pairs of its fields that must be in order (``ordered``: a warning threshold not above its
critical one); the pairs are checked once every layer is in, so a file may raise one of a
pair and ``--set`` the other. ``--set`` reads plain decimal numbers (``3``, ``2.5``,
``1e3``); a TOML file follows TOML (``1_000`` is 1000 there).

>>> s = Settings({"n_plus_one.min_calls": 3})
>>> s["n_plus_one.min_calls"], s["n_plus_one.critical_calls"]
(3, 10)
>>> Settings({"n_plus_one.min_call": 3})
Traceback (most recent call last):
...
correlate.errors.SettingsError: settings: unknown key 'n_plus_one.min_call' (did you mean 'n_plus_one.min_calls'?); valid keys in [n_plus_one]: ...
>>> parse_assignments(["n_plus_one.min_union_ms=25"])
{'n_plus_one.min_union_ms': 25.0}
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from correlate.errors import SettingsError

if TYPE_CHECKING:
    from correlate.analysis.detectors import Detector

T = TypeVar("T")

#: What ``settings=`` accepts: a :class:`Settings`, or keys (``"pool.min_wait_ms"``) or
#: sections (``{"pool": {"min_wait_ms": 5}}``) mapped to values.
SettingsLike = typing.Union["Settings", Mapping[str, Any]]


def setting(
    default: T, doc: str, *, low: float | None = 0.0, high: float | None = None, unit: str = ""
) -> T:
    """A settings field: its default, one line saying what it bounds, its range and unit."""
    meta = {"doc": doc, "low": low, "high": high, "unit": unit}
    return typing.cast(T, dataclasses.field(default=default, metadata=meta))


def share(default: float, doc: str) -> float:
    """A setting that is a fraction from 0 to 1."""
    return setting(default, doc, low=0.0, high=1.0, unit="share")


def is_section(value: object) -> bool:
    """Whether ``value`` is a settings section: a dataclass instance naming its section."""
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and isinstance(getattr(value, "section", None), str)
    )


def settings_parameters(detector: Callable[..., Any]) -> dict[str, type]:
    """The detector's settings parameters: parameter name → section type (their defaults')."""
    try:
        parameters = inspect.signature(detector).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no settings
        return {}
    return {
        name: type(p.default)
        for name, p in parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and is_section(p.default)
    }


def section_types(detectors: Iterable[Detector] | None = None) -> dict[str, type]:
    """Section name → settings type, over ``detectors`` (default: every built-in one)."""
    if detectors is None:
        from correlate.analysis.detectors import DETECTORS

        detectors = DETECTORS
    types: dict[str, type] = {}
    for detector in detectors:
        for kind in settings_parameters(detector).values():
            types[kind.section] = kind  # type: ignore[attr-defined]
    return dict(sorted(types.items()))


class Settings:
    """The settings of a set of detectors: defaults with validated values layered on top.

    ``values`` maps keys (``"n_plus_one.min_calls"``) or sections (``{"n_plus_one":
    {"min_calls": 3}}``) to values. ``detectors`` names the detectors whose sections are
    valid (default: the built-in :data:`~correlate.analysis.detectors.DETECTORS`).
    Immutable: :meth:`with_values` returns a new object.
    """

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        detectors: Iterable[Detector] | None = None,
        origin: str = "settings",
    ) -> None:
        self._types = section_types(detectors)
        self._values: dict[str, dict[str, Any]] = {}
        self._origins: list[str] = []
        #: key → the layer that set it, for messages
        self._set_by: dict[str, str] = {}
        if values:
            layered = self._layered(values, origin)._checked(origin)
            self._values, self._origins, self._set_by = (
                layered._values,
                layered._origins,
                layered._set_by,
            )

    # -- building --------------------------------------------------------------------

    @classmethod
    def from_project(
        cls,
        start: str | os.PathLike[str] | None = None,
        *,
        detectors: Iterable[Detector] | None = None,
    ) -> Settings:
        """Defaults with the project file that applies in ``start`` (default: the
        current directory) layered on top; just the defaults when there is none."""
        return cls._project(start, detectors)._checked()

    @classmethod
    def _project(
        cls, start: str | os.PathLike[str] | None, detectors: Iterable[Detector] | None
    ) -> Settings:
        from correlate.config import find_config

        config = find_config(start)
        settings = cls(detectors=detectors)
        if config is None:
            return settings
        return settings._layered(config.table, config.where())

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, detectors: Iterable[Detector] | None = None
    ) -> Settings:
        """Defaults with the file ``path`` (a correlate.toml or pyproject.toml) on top."""
        from correlate.config import read_config

        config = read_config(path)
        settings = cls(detectors=detectors)
        if config is None:
            return settings
        return settings.with_values(config.table, origin=config.where())

    def with_values(self, values: Mapping[str, Any], *, origin: str = "settings") -> Settings:
        """A copy with ``values`` layered over these (checked as :class:`Settings` does)."""
        return self._layered(values, origin)._checked(origin)

    def _layered(self, values: Mapping[str, Any], origin: str) -> Settings:
        """A copy with ``values`` checked one by one and layered over these; the pairs of
        fields that must be in order are left to :meth:`_checked`."""
        origin = getattr(values, "origin", origin)
        per_key: Mapping[str, str] = getattr(values, "origins", {})
        new = Settings.__new__(Settings)
        new._types = self._types
        new._values = {section: dict(fields) for section, fields in self._values.items()}
        new._set_by = dict(self._set_by)
        for section, fields in _validate(values, self._types, origin).items():
            new._values.setdefault(section, {}).update(fields)
            for name in fields:
                key = f"{section}.{name}"
                new._set_by[key] = per_key.get(key, origin)
        new._origins = [*self._origins, origin] if values else list(self._origins)
        return new

    def _checked(self, origin: str | None = None) -> Settings:
        """These settings, once each section's ordered pairs are in order."""
        origin = origin or (self._origins[-1] if self._origins else "settings")
        for section, kind in self._types.items():
            values: Any = self.of(kind)
            for low, high in getattr(kind, "ordered", ()):
                a, b = getattr(values, low), getattr(values, high)
                if a > b:
                    raise SettingsError(
                        f"{origin}: {section}.{low} ({a:g}, {self._source(section, low)}) is "
                        f"above {section}.{high} ({b:g}, {self._source(section, high)}); "
                        f"{low} must not be above {high}: lower the one or raise the other",
                        key=f"{section}.{low}",
                    )
        return self

    def _source(self, section: str, name: str) -> str:
        where = self._set_by.get(f"{section}.{name}")
        return "the default" if where is None else f"from {where}"

    # -- reading ---------------------------------------------------------------------

    def of(self, kind: type[T]) -> T:
        """The section ``kind`` (a settings dataclass), with the values set for it."""
        section = typing.cast(str, getattr(kind, "section", None))
        return kind(**self._values.get(section, {}))

    def __getitem__(self, key: str) -> Any:
        section, name = _split(key, self._types, "settings")
        return getattr(self.of(self._types[section]), name)

    def keys(self) -> list[str]:
        """Every valid key, ``section.field``, sorted."""
        return [
            f"{section}.{f.name}"
            for section, kind in self._types.items()
            for f in dataclasses.fields(kind)
        ]

    def sections(self) -> dict[str, Any]:
        """Section name → its resolved settings dataclass."""
        return {section: self.of(kind) for section, kind in self._types.items()}

    @property
    def origins(self) -> tuple[str, ...]:
        """Where the values came from, lowest layer first (a file's path, ``--set …``)."""
        return tuple(self._origins)

    def changed(self) -> dict[str, Any]:
        """The keys set away from their defaults, with their values."""
        return {
            f"{section}.{name}": value
            for section, fields in sorted(self._values.items())
            for name, value in sorted(fields.items())
            if value != _default(self._types[section], name)
        }

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every section's values, as plain data (TOML- and JSON-ready)."""
        return {name: dataclasses.asdict(value) for name, value in self.sections().items()}

    def arguments(self, detector: Callable[..., Any]) -> dict[str, Any]:
        """The keyword arguments that give ``detector`` its resolved settings."""
        return {name: self.of(kind) for name, kind in settings_parameters(detector).items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self._types == other._types and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.changed().items())
        origins = f" from {', '.join(self._origins)}" if self._origins else ""
        return f"<Settings {changed or 'defaults'}{origins}>"


def resolve_settings(
    settings: SettingsLike | None = None,
    *,
    detectors: Iterable[Detector] | None = None,
    start: str | os.PathLike[str] | None = None,
) -> Settings:
    """The settings a run is analysed with: a :class:`Settings` as it is; otherwise the
    project file's (found from ``start``, default the current directory) with the
    mapping ``settings``, if any, layered on top."""
    if isinstance(settings, Settings):
        return settings
    if settings is not None and not isinstance(settings, Mapping):
        raise SettingsError(
            "settings= takes a correlate.Settings or a mapping of keys to values "
            f"(e.g. {{'n_plus_one.min_calls': 3}}), not {settings!r}"
        )
    base = Settings._project(start, detectors)
    return (base._layered(settings, "settings") if settings else base)._checked()


class Assignments(dict[str, Any]):
    """``--set`` values by key, remembering which ``--set`` gave each (for messages)."""

    origin = "--set"

    def __init__(self) -> None:
        super().__init__()
        self.origins: dict[str, str] = {}


def parse_assignments(
    texts: Iterable[str], *, detectors: Iterable[Detector] | None = None
) -> dict[str, Any]:
    """``KEY=VALUE`` texts (the CLI's ``--set``) as keys mapped to typed values.

    Each value is read as its field's type, a plain decimal number
    (``n_plus_one.min_calls=3`` gives ``3``), and checked against its range.
    """
    types = section_types(detectors)
    out = Assignments()
    for text in texts:
        key, sep, raw = text.partition("=")
        key, raw = key.strip(), raw.strip()
        origin = f"--set {text}"
        if not sep or not key:
            raise SettingsError(f"{origin}: not KEY=VALUE (e.g. n_plus_one.min_calls=3)")
        section, name = _split(key, types, origin)
        kind = _field_type(types[section], name)
        out[key] = _check(_from_text(raw, kind, key, origin), types[section], name, origin)
        out.origins[key] = origin
    return out


# -- checking ------------------------------------------------------------------------


def _validate(
    values: Mapping[str, Any], types: Mapping[str, type], origin: str
) -> dict[str, dict[str, Any]]:
    """``values`` as section → field → checked value; raise :class:`SettingsError` otherwise."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise SettingsError(f"{origin}: a key must be a string, not {key!r}")
        if "." not in key and isinstance(value, Mapping):
            if key not in types:
                _split(f"{key}.", types, origin)  # raises: unknown section
            for name, item in value.items():
                section, field_name = _split(f"{key}.{name}", types, origin)
                out.setdefault(section, {})[field_name] = _check(
                    item, types[section], field_name, origin
                )
            continue
        section, name = _split(key, types, origin)
        out.setdefault(section, {})[name] = _check(value, types[section], name, origin)
    return out


def _split(key: str, types: Mapping[str, type], origin: str) -> tuple[str, str]:
    section, dot, name = key.partition(".")
    valid = tuple(
        f"{s}.{f.name}" for s, kind in sorted(types.items()) for f in dataclasses.fields(kind)
    )
    if dot and section in types and name in {f.name for f in dataclasses.fields(types[section])}:
        return section, name
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if section in types:
        listed = [k for k in valid if k.startswith(f"{section}.")]
        where = f"valid keys in [{section}]"
    else:
        listed, where = list(valid), "valid keys"
    raise SettingsError(
        f"{origin}: unknown key {key.rstrip('.')!r}{hint}; {where}: {', '.join(listed)}",
        key=key,
        valid=valid,
    )


def _field_type(kind: type, name: str) -> type:
    hints = typing.get_type_hints(kind)
    return typing.cast(type, hints[name])


def _field(kind: type, name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(kind) if f.name == name)


def _default(kind: type, name: str) -> Any:
    return _field(kind, name).default


def _type_name(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _check(value: Any, kind: type, name: str, origin: str) -> Any:
    """``value`` for field ``name`` of ``kind``: of its type (ints widen to float), in range."""
    key = f"{kind.section}.{name}"  # type: ignore[attr-defined]
    expected = _field_type(kind, name)
    ok = (
        isinstance(value, bool)
        if expected is bool
        else not isinstance(value, bool)
        and (
            isinstance(value, int)
            if expected is int
            else isinstance(value, int | float)
            if expected is float
            else False
        )
    )
    if not ok:
        raise SettingsError(
            f"{origin}: {key} must be {_type_name(expected)}, not {value!r} "
            f"(default: {_default(kind, name)!r})",
            key=key,
        )
    if expected is float:
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"{origin}: {key} must be finite, not {value!r}", key=key)
    if expected is not bool:
        meta = _field(kind, name).metadata
        low, high = meta.get("low"), meta.get("high")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise SettingsError(f"{origin}: {key} must be {bounds}, not {value!r}", key=key)
    return value


#: What --set takes for a whole number and a number: ASCII decimal, no ``_`` grouping
#: (Python's int() and float() also take ``1_000`` and non-ASCII digits).
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|nan)", re.I)


def _from_text(raw: str, expected: type, key: str, origin: str) -> Any:
    if expected is bool and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if expected is int and _INT.fullmatch(raw):
        return int(raw)
    if expected is float and _FLOAT.fullmatch(raw):
        return float(raw)  # inf and nan are read, then refused as not finite by _check
    raise SettingsError(f"{origin}: {key} must be {_type_name(expected)}, not {raw!r}", key=key)


__all__ = [
    "Assignments",
    "Settings",
    "SettingsLike",
    "is_section",
    "parse_assignments",
    "resolve_settings",
    "section_types",
    "setting",
    "settings_parameters",
    "share",
]
