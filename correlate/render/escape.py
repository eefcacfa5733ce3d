"""One escaping discipline per output, for every string that came from a trace.

Routes, statements, span and service names, run names, exception types and
attribute values are written by the service under test (or by whoever can
reach it), so every renderer treats them as hostile text:

* :func:`markdown` — literal text in GitHub-flavoured Markdown: no link,
  image, raw HTML, emphasis, code span, table-cell break or line break, and
  no ``@mention``, ``#123`` reference or bare URL that GitHub would turn
  into a link;
* :func:`terminal` — no control characters or escape sequences (CSI, OSC 8
  hyperlinks, OSC 52 clipboard writes, C1 controls, bidi overrides) reach a
  terminal: each is shown as a visible ``\\xNN`` escape. Put the result in a
  rich ``Text``, never in markup;
* :func:`html` — text and attribute values in HTML, with control characters
  and bidi overrides shown as escapes as :func:`terminal` does (newlines and
  tabs stay: in HTML they are white space, and line breaks in ``<pre>``).

JSON needs none of these: ``json.dumps`` keeps strings exact.
"""

from __future__ import annotations

import html as _html
import re

#: C0 controls, DEL and C1 controls (ESC starts every CSI/OSC sequence; BEL
#: and ST end them), the Unicode line and paragraph separators, and the
#: bidirectional overrides and isolates that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: The same, but newline and tab: in HTML they are white space.
_HTML_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

#: ASCII punctuation that starts inline markup in CommonMark or GFM (emphasis,
#: code, links, images, raw HTML, entities, table cells, strikethrough), or
#: headings, or GitHub's math (``$``). CommonMark lets a backslash make any
#: ASCII punctuation literal.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()<>#!|~&$@])")
#: What starts a block only at the start of a line (where trace text may stand,
#: after a list marker): a list item (``-``, ``+``, ``1.``, ``1)``) or a setext
#: underline (``=``).
_MD_BLOCK_START = re.compile(r"^(\d*)([-+=.)])")
#: Spaces at either end: four at the start of a list item make a code block, two
#: at the end of a line a hard line break. As character references they are text.
_MD_EDGE_SPACES = re.compile(r"^ +| +$")
#: Markdown line breaks: any of them would end a paragraph or a table row.
_MD_BREAK = re.compile("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")
#: GitHub turns ``@user``, ``#123``, ``GH-123``, bare ``http://`` and ``www.``
#: and e-mail addresses into links after rendering Markdown. A WORD JOINER
#: (U+2060, zero width) after the ``@``, ``#`` or ``GH``, inside ``://`` and
#: after ``www`` breaks each pattern without changing what a reader sees.
_WJ = "\u2060"
_MD_AUTOLINK = re.compile(r"(?i)([@#])|(:)(?=//)|(www)(?=\.)|(\bgh)(?=-\d)")


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: object) -> str:
    """``text`` with every control character shown as an escape, safe to print.

    >>> terminal("/x\\x1b]52;c;ZXZpbA==\\x07 ok\\n")
    '/x\\\\x1b]52;c;ZXZpbA==\\\\x07 ok\\\\n'
    >>> terminal("[/x] [null]")
    '[/x] [null]'
    """
    return _CONTROL.sub(_visible, "" if text is None else str(text))


def terminal_lines(text: str) -> str:
    """Multi-line output (a summary of ours) with control characters escaped, newlines kept.

    >>> terminal_lines("a\\x1b[2J\\nb")
    'a\\\\x1b[2J\\nb'
    """
    return "\n".join(terminal(line) for line in text.split("\n"))


def markdown(text: object) -> str:
    """``text`` as literal, inline Markdown: one line, no markup, no GitHub autolink.

    >>> markdown("/x/<img src=x>|*a* @team")
    '/x/\\\\<img src=x\\\\>\\\\|\\\\*a\\\\* \\\\@\\u2060team'
    """
    value = "" if text is None else str(text)
    value = _MD_BREAK.sub(" ", value)
    value = _CONTROL.sub(_visible, value)
    value = _MD_AUTOLINK.sub(lambda m: m.group(0) + _WJ, value)
    value = _MD_SPECIAL.sub(r"\\\1", value)
    value = _MD_BLOCK_START.sub(r"\1\\\2", value)
    return _MD_EDGE_SPACES.sub(lambda m: "&#32;" * len(m.group(0)), value)


def html(value: object) -> str:
    """``value`` as HTML text or a quoted attribute value, control characters made visible.

    >>> html("<script>alert('x')</script>")
    '&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;'
    >>> html("a\\x1b[2J\\u202eb\\nc")
    'a\\\\x1b[2J\\\\u202eb\\nc'
    """
    text = _HTML_CONTROL.sub(_visible, "" if value is None else str(value))
    return _html.escape(text, quote=True)


__all__ = ["html", "markdown", "terminal", "terminal_lines"]
