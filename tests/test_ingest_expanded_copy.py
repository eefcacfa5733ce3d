"""Compressed span files read in bulk from an uncompressed copy, and damaged ones salvaged.

Whatever the bulk paths do, a file must give what the careful (line by line) path
gives it: the same spans, the same problems, the same error. Each test reads a file
both ways, with every size bound lowered (bulk) and raised (careful).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from correlate.errors import InputError
from correlate.fileio import LineBatch, iter_line_batches
from correlate.ingest import salvage, spanfile, spanformat
from correlate.store import open_store

from .test_ingest_bulk import _line, _problems, _rows

_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "gzip": gzip.compress,
    "zstd": zstandard.compress,
}


def _both_ways(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: object
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """(rows, problems, error) of ``path`` read as a big file, then as a small one."""
    results = []
    for big in (True, False):
        with monkeypatch.context() as patch:
            bound = 1 if big else 1 << 60
            patch.setattr(spanfile, "EXPAND_MIN_BYTES", bound)
            patch.setattr(spanfile, "SALVAGE_MIN_BYTES", bound)
            patch.setattr(salvage, "PIECE_BYTES", 4000)
            patch.setattr(salvage, "CAREFUL_BYTES", 600)
            with open_store(tmp_path / f"big-{big}.duckdb") as store:
                error = None
                try:
                    store.ingest([path], run="r", **options)  # type: ignore[arg-type]
                except InputError as exc:
                    error = str(exc)
                results.append((_rows(store), _problems(store), error))
    return results[0], results[1]


def _lines(count: int, damage: dict[int, str] | None = None) -> bytes:
    text = [_line(f"l{i}", i, spans=2) for i in range(1, count + 1)]
    for number, replacement in (damage or {}).items():
        text[number - 1] = replacement
    return ("\n".join(text) + "\n").encode()


@pytest.mark.parametrize(
    ("codec", "damaged"), [("zstd", False), ("zstd", True), ("gzip", True), ("none", True)]
)
def test_without_a_temporary_folder_a_file_is_read_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, damaged: bool
) -> None:
    """No copy and no pieces can be made: the file is read as a small one, not refused
    with an error about the file itself."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))
    path = tmp_path / f"spans.jsonl.{codec}"
    path.write_bytes(_COMPRESS[codec](_lines(20, {4: "not JSON"} if damaged else None)))
    big, small = _both_ways(path, tmp_path, monkeypatch)
    assert big == small
    rows, problems, error = big
    assert error is None
    assert len(rows) == (19 if damaged else 20) * 2
    assert [line for _, line, _ in problems] == ([4] if damaged else [])


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_a_document_whose_first_line_holds_a_key_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """A pretty-printed OTLP document whose first line is ``{"resourceSpans": [`` rather
    than ``{`` alone is one document, not lines that are each bad JSON."""
    batches = [json.loads(_line(f"d{i}", i, spans=2))["resourceSpans"][0] for i in range(1, 9)]
    text = '{"resourceSpans": [\n' + ",\n".join(json.dumps(b) for b in batches) + "\n]}\n"
    path = tmp_path / f"document.json.{codec}"
    path.write_bytes(_COMPRESS[codec](text.encode()))
    big, small = _both_ways(path, tmp_path, monkeypatch)
    assert big == small
    rows, problems, error = big
    assert (len(rows), problems, error) == (16, [], None)


def test_whole_zstd_frames_before_junk_keep_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes after the last frame that are no frame (junk, padding) are damage after the
    lines before them, as after a gzip member: those lines are kept."""
    path = tmp_path / "spans.jsonl.zst"
    path.write_bytes(zstandard.compress(_lines(20)) + b"\0" * 16)
    big, small = _both_ways(path, tmp_path, monkeypatch)
    assert big == small
    rows, problems, error = big
    assert (len(rows), error) == (40, None)
    [(_, line, reason)] = problems
    assert line == 21 and reason.startswith("zstd stream is damaged")


def test_a_compressed_file_inside_the_copy_is_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .gz inside a .zst, read as OTLP/JSON: its bytes, as the careful path reads them
    (not lines of JSON), not what DuckDB would find by opening the gzip layer too."""
    path = tmp_path / "spans.jsonl.gz.zst"
    path.write_bytes(zstandard.compress(gzip.compress(_lines(20))))
    big, small = _both_ways(path, tmp_path, monkeypatch, format="otlp-json")
    assert big == small
    rows, _, error = big
    assert rows == [] and error is not None and "nothing could be read" in error


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_copy_past_the_expansion_bound_is_the_error_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """The copy meets the bound first: its error is the file's, as the careful path's
    would be, without that path reading up to the bound again."""
    path = tmp_path / f"spans.jsonl.{codec}"
    path.write_bytes(_COMPRESS[codec](_lines(20, {4: "not JSON"})))
    big, small = _both_ways(path, tmp_path, monkeypatch, max_expanded_bytes=5000)
    assert big == small
    assert big[2] is not None and "expands past 4.883 KiB" in big[2]
    monkeypatch.setattr(spanfile, "EXPAND_MIN_BYTES", 1)
    monkeypatch.setattr(spanfile, "SALVAGE_MIN_BYTES", 1)
    read: list[Path] = []

    def line_by_line(path: Path) -> Iterator[LineBatch]:
        read.append(path)
        return iter_line_batches(path)

    monkeypatch.setattr(spanformat, "iter_line_batches", line_by_line)
    with open_store(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="expands"):
        store.ingest([path], run="r", format="otlp-json", max_expanded_bytes=5000)
    assert read == []


def _cut_stream(data: bytes, codec: str) -> bytes:
    """``data`` compressed a line at a time (as a recorder flushing writes it), then cut
    at three quarters: a file cut while it was written."""
    if codec == "gzip":
        packed = gzip.compress(data)
    else:
        writer = zstandard.ZstdCompressor().compressobj()
        packed = b"".join(
            writer.compress(line) + writer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            for line in data.splitlines(keepends=True)
        )
        packed += writer.flush()
    return packed[: len(packed) * 3 // 4]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
@pytest.mark.parametrize("damage", [{}, {5: "not JSON"}])
def test_a_compressed_file_cut_short_is_read_in_bulk_up_to_the_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, damage: dict[int, str]
) -> None:
    """Its complete lines are copied and read in bulk (salvaged around bad ones), and the
    cut is the problem of the line it falls in: what the careful path gives."""
    path = tmp_path / f"spans.jsonl.{codec}"
    path.write_bytes(_cut_stream(_lines(60, damage), codec))
    big, small = _both_ways(path, tmp_path, monkeypatch)
    assert big == small
    rows, problems, error = big
    assert error is None and len(rows) > 40
    assert [line for _, line, _ in problems[:-1]] == list(damage)
    assert f"{codec} stream is damaged or cut short" in problems[-1][2]
    for bound in ("EXPAND_MIN_BYTES", "SALVAGE_MIN_BYTES"):
        monkeypatch.setattr(spanfile, bound, 1)
    monkeypatch.setattr(salvage, "PIECE_BYTES", 4000)
    read: list[Path] = []

    def line_by_line(path: Path) -> Iterator[LineBatch]:
        read.append(path)
        return iter_line_batches(path)

    monkeypatch.setattr(spanformat, "iter_line_batches", line_by_line)
    with open_store(tmp_path / "s.duckdb") as store:
        store.ingest([path], run="r")
        assert read == []  # not read line by line
        assert (_rows(store), _problems(store)) == (rows, problems)
