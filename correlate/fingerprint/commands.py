"""Redis commands and pipelines, folded to their shape before fingerprinting.

opentelemetry-instrumentation-redis (and the other languages' Redis instrumentations)
record a command with its arguments, sanitised to ``?`` by default (``MGET ? ? ?``: one
``?`` per key), and a pipeline as one span whose statement is its commands, one a line.
How many keys an ``MGET`` or ``DEL`` names, or how many ``GET``\\s a pipeline built in a
loop holds, is data, as an ``IN`` list's length is: a variadic command's repeated
arguments fold to the first, and a run of one command in a pipeline to one. A pipeline
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


def fold_commands(text: str) -> tuple[str, str]:
    """``text``'s commands with their repetitions folded, and its operation: the command's
    name, or ``PIPELINE`` and the names of what it holds."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    if len(lines) == 1 and lines[0].split()[0].upper() == _PIPELINE:
        # a folded pipeline's own text folds to itself
        lines = [c.strip() for c in lines[0].split(None, 1)[1:][0].split(";") if c.strip()]
        pipeline = True
    else:
        pipeline = len(lines) > 1
    commands: list[list[str]] = []
    last = None
    for line in lines:
        words = _fold_arguments(line.split())
        shape = _shape(words)
        if shape != last:
            commands.append(words)
            last = shape
    if not commands:
        return text, ""
    if not pipeline:
        return " ".join(commands[0]), commands[0][0].upper()
    folded = "; ".join(" ".join(words) for words in commands)
    names = ", ".join(words[0].upper() for words in commands)
    return f"{_PIPELINE} {folded}", f"{_PIPELINE} {names}"
