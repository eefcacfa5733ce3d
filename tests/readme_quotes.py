"""An example README's quoted verdict, checked against a run of the example.

The quote (the ``text`` block under "## The verdict") is a headline and findings, each cut
to its title and a few sentences, ``…`` marking the cuts. A run of the example is another
run: its figures, the order and severity of its findings, and which of them it has all move
with the machine's load, so figures, list numbers and severities are compared as any, and a
finding the run does not have is passed over. What must hold is the words: every fragment
of a quoted finding the run has is in its text, so a reworded sentence shows up here.
"""

from __future__ import annotations

import re
from pathlib import Path

_NUMBER = re.compile(r"(\d[\d.,]*)")
_SEVERITY = re.compile(r"\[(?:CRITICAL|WARNING|INFO)\]")


def _pattern(fragment: str) -> str:
    """``fragment`` as a regular expression: figures as any figure, severity as any."""
    out = []
    for piece in _NUMBER.split(" ".join(fragment.split())):
        if _NUMBER.fullmatch(piece):
            # a figure, and the sentence's full stop or comma after it if any
            out.append(r"\d[\d.,]*?")
        else:
            for i, part in enumerate(_SEVERITY.split(piece)):
                out.append(("" if i == 0 else _SEVERITY.pattern) + re.escape(part))
    return "".join(out)


def quoted_findings(readme: Path) -> list[list[str]]:
    """The quote's paragraphs (the headline first), each as its fragments between cuts."""
    text = readme.read_text(encoding="utf-8")
    block = text.split("## The verdict", 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    return [
        [f.strip() for f in paragraph.split("…") if f.strip()]
        for paragraph in block.split("\n\n")
        if paragraph.strip()
    ]


def unmatched(readme: Path, report: str) -> tuple[int, list[str]]:
    """(how many quoted paragraphs the run has, the fragments of those not in ``report``).

    A paragraph is the run's when its first fragment (a finding's title, or the headline)
    is in ``report``."""
    flat = " ".join(report.split())
    matched, missing = 0, []
    for fragments in quoted_findings(readme):
        if not re.search(_pattern(fragments[0]), flat):
            continue
        matched += 1
        missing += [f for f in fragments[1:] if not re.search(_pattern(f), flat)]
    return matched, missing
