"""One severity scale for findings, plan insights and verdicts.

Members compare by urgency, not alphabetically: ``critical > warning > info``.
They are strings too, so they print, hash and serialise as their values.

>>> Severity.CRITICAL > Severity.WARNING > Severity.INFO
True
>>> sorted(["info", "critical", "warning"], key=Severity.parse, reverse=True)
['critical', 'warning', 'info']
>>> f"{Severity.WARNING}", Severity.WARNING == "warning"
('warning', True)
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How urgent a finding or plan insight is, most urgent first.

    ``critical``: the run's users felt it (timeouts, errors, most of a route's
    time); ``warning``: a real, fixable problem; ``info``: worth knowing, not
    worth failing a build over.
    """

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def level(self) -> int:
        """2 for critical, 1 for warning, 0 for info: larger is more urgent."""
        return _LEVELS[self]

    @classmethod
    def parse(cls, value: str) -> Severity:
        """``value`` as a severity; :class:`ValueError` naming the valid ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ValueError(f"severity must be one of {valid}, not {value!r}") from None

    def _other(self, other: object) -> int | None:
        if isinstance(other, Severity):
            return other.level
        if isinstance(other, str) and other in _BY_VALUE:
            return _BY_VALUE[other].level
        return None

    def __lt__(self, other: str) -> bool:
        level = self._other(other)
        return NotImplemented if level is None else self.level < level

    def __le__(self, other: str) -> bool:
        level = self._other(other)
        return NotImplemented if level is None else self.level <= level

    def __gt__(self, other: str) -> bool:
        level = self._other(other)
        return NotImplemented if level is None else self.level > level

    def __ge__(self, other: str) -> bool:
        level = self._other(other)
        return NotImplemented if level is None else self.level >= level


_LEVELS = {Severity.CRITICAL: 2, Severity.WARNING: 1, Severity.INFO: 0}
_BY_VALUE = {s.value: s for s in Severity}

__all__ = ["Severity"]
