"""Reading input files: opening and decompressing them, their first bytes, numbered lines.

Neutral ground: ingest and plans both read through here, and this package
imports neither. Compression codecs are a registry of their own
(:data:`correlate.fileio.codecs.CODECS`); every reader gets them all.
"""

from __future__ import annotations

from correlate.fileio.codecs import CODECS, Codec
from correlate.fileio.lines import (
    BLOCK_BYTES,
    LineBatch,
    iter_line_batches,
    json_error,
    line_of_offset,
    looks_binary,
    looks_utf16,
)
from correlate.fileio.streams import (
    DEFAULT_MAX_EXPANDED_BYTES,
    DamagedStreamError,
    ExpansionLimitError,
    codec_of,
    duckdb_compression,
    expansion_limit,
    format_size,
    open_bytes,
    parse_size,
    read_all,
    read_head,
    without_codec_suffix,
)

__all__ = [
    "BLOCK_BYTES",
    "CODECS",
    "DEFAULT_MAX_EXPANDED_BYTES",
    "Codec",
    "DamagedStreamError",
    "ExpansionLimitError",
    "LineBatch",
    "codec_of",
    "duckdb_compression",
    "expansion_limit",
    "format_size",
    "iter_line_batches",
    "json_error",
    "line_of_offset",
    "looks_binary",
    "looks_utf16",
    "open_bytes",
    "parse_size",
    "read_all",
    "read_head",
    "without_codec_suffix",
]
