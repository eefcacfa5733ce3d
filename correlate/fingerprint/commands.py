"""Redis commands and pipelines, folded to their shape before fingerprinting.

opentelemetry-instrumentation-redis (and the other languages' Redis instrumentations)
record a command with its arguments, sanitised to ``?`` by default (``MGET ? ? ?``: one
``?`` per key), and a pipeline as one span whose statement is its commands, one a line.
How many keys an ``MGET`` or ``DEL`` names, or how many ``GET``\\s a pipeline built in a
loop holds, is data, as an ``IN`` list's length is: a variadic command's repeated
arguments fold to the first, a run of one command in a pipeline to one, and a run of a
few commands queued per item (``GET``, ``EXPIRE``, ``GET``, ``EXPIRE``) to one turn. A pipeline
stays a pipeline (one round trip, not one per command), and its operation names what it
holds.

>>> fold_commands("MGET ? ? ?")
('MGET ?', 'MGET')
>>> fold_commands("GET ?\\nGET ?\\nGET ?\\nSET ? ?")
('PIPELINE GET ?; SET ? ?', 'PIPELINE GET, SET')
"""

from __future__ import annotations

from .normalize import COMMAND_PASSES, normalize_tokens
from .tokens import render, tokenize

__all__ = ["COMMAND_SYSTEMS", "fold_commands"]

#: ``db.system`` values that speak Redis's protocol. Lowercase.
COMMAND_SYSTEMS = frozenset({"redis", "valkey"})

#: Variadic commands: (arguments before the repeated ones, arguments per repetition).
_VARIADIC: dict[str, tuple[int, int]] = {
    **dict.fromkeys(
        ("MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "SINTER", "SUNION", "SDIFF",
         "PFCOUNT"),
        (0, 1),
    ),
    **dict.fromkeys(("MSET", "MSETNX"), (0, 2)),
    **dict.fromkeys(
        ("HMGET", "HDEL", "SADD", "SREM", "SMISMEMBER", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX",
         "ZREM", "ZMSCORE", "PFADD", "GEOPOS", "XDEL", "SINTERSTORE", "SUNIONSTORE",
         "SDIFFSTORE"),
        (1, 1),
    ),
    **dict.fromkeys(("HSET", "HMSET"), (1, 2)),
}  # fmt: skip

_PIPELINE = "PIPELINE"
#: How many of a pipeline's commands its operation names: a finding's title carries it.
_NAMED = 8


def _shape(words: list[str]) -> str:
    """What a run of arguments looks like once values are placeholders."""
    return render(normalize_tokens(tokenize(" ".join(words), None), COMMAND_PASSES))


def _fold_arguments(words: list[str]) -> list[str]:
    name = words[0].upper()
    if name not in _VARIADIC:
        return words
    fixed, step = _VARIADIC[name]
    head, rest = words[: 1 + fixed], words[1 + fixed :]
    kept: list[str] = []
    last = None
    for i in range(0, len(rest), step):
        chunk = rest[i : i + step]
        shape = _shape(chunk)
        if shape != last:
            kept.extend(chunk)
            last = shape
    return head + kept


def _period(items: list[str]) -> int:
    """The length of the shortest run of ``items`` that, repeated whole, spells them all
    (Knuth-Morris-Pratt's failure function, linear in length)."""
    border = [0] * len(items)
    k = 0
    for i in range(1, len(items)):
        while k and items[i] != items[k]:
            k = border[k - 1]
        if items[i] == items[k]:
            k += 1
        border[i] = k
    if not items:
        return 0
    shortest = len(items) - border[-1]
    # a shortest period that stops short is no whole repetition, and no longer one is either
    return shortest if len(items) % shortest == 0 else len(items)


def fold_commands(text: str) -> tuple[str, str]:
    """``text``'s commands with their repetitions folded, and its operation: the command's
    name, or ``PIPELINE`` and the names of what it holds."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    pipeline = len(lines) > 1
    if len(lines) == 1:
        name, *rest = lines[0].split(None, 1)
        held = [c.strip() for c in rest[0].split(";") if c.strip()] if rest else []
        if name.upper() == _PIPELINE and held:
            # a folded pipeline's own text folds to itself
            lines, pipeline = held, True
    commands: list[list[str]] = []
    shapes: list[str] = []
    # a pipeline built in a loop repeats its lines: each is shaped once
    seen: dict[str, tuple[list[str], str]] = {}
    for line in lines:
        if line not in seen:
            words = _fold_arguments(line.split())
            seen[line] = (words, _shape(words))
        words, shape = seen[line]
        if not shapes or shape != shapes[-1]:
            commands.append(words)
            shapes.append(shape)
    if not commands:
        return text, ""
    # a loop that queues a few commands per item repeats them: one turn of it is the shape
    commands = commands[: _period(shapes)]
    if not pipeline:
        return " ".join(commands[0]), commands[0][0].upper()
    folded = "; ".join(" ".join(words) for words in commands)
    names = ", ".join(words[0].upper() for words in commands[:_NAMED])
    if len(commands) > _NAMED:
        names += f" and {len(commands) - _NAMED} more"
    return f"{_PIPELINE} {folded}", f"{_PIPELINE} {names}"
