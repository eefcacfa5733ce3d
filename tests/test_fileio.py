"""correlate.fileio: every codec read by content, cut-short files, the bound on expansion."""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.cli import cli
from correlate.errors import InputError
from correlate.fileio import (
    CODECS,
    DamagedStreamError,
    ExpansionLimitError,
    codec_of,
    expansion_limit,
    format_size,
    iter_line_batches,
    open_bytes,
    parse_size,
    read_all,
    read_head,
    without_codec_suffix,
)
from correlate.fileio.codecs import codec_for
from correlate.store import Store

DATA = Path(__file__).parent / "data"
CHECKOUT = DATA / "otlp" / "checkout.jsonl"


def _zstd_frames(data: bytes) -> bytes:
    """Two frames one after the other, as an appending writer leaves them."""
    half = len(data) // 2
    cctx = zstandard.ZstdCompressor()
    return cctx.compress(data[:half]) + cctx.compress(data[half:])


#: Writers that make one frame where WRITERS makes several.
ONE_FRAME: dict[str, Callable[[bytes], bytes]] = {"zstd": zstandard.compress}

#: How the tests write each codec: its suffix and a compressor.
WRITERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": (".gz", gzip.compress),
    "bzip2": (".bz2", bz2.compress),
    "xz": (".xz", lzma.compress),
    "zstd": (".zst", _zstd_frames),
}


def test_every_codec_has_a_writer_here() -> None:
    assert sorted(WRITERS) == sorted(c.name for c in CODECS)


def _write(tmp_path: Path, codec: str, data: bytes, stem: str = "spans.jsonl") -> Path:
    suffix, compress = WRITERS[codec]
    path = tmp_path / (stem + suffix)
    path.write_bytes(compress(data))
    return path


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_each_codec_is_told_by_content_and_read_whole(tmp_path: Path, codec: str) -> None:
    data = b"".join(b'{"n": %d}\n' % i for i in range(5000))
    path = _write(tmp_path, codec, data)
    found = codec_of(path)
    assert found is not None and found.name == codec
    assert read_all(path) == data
    assert read_head(path, 100) == data[:100]
    lines = [line for batch in iter_line_batches(path, block_bytes=4096) for line in batch.lines]
    assert lines == data.decode().splitlines()
    # the name does not matter: the same bytes under a plain name are decompressed too
    plain_named = tmp_path / "renamed.jsonl"
    plain_named.write_bytes(path.read_bytes())
    assert read_all(plain_named) == data


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_each_codec_gives_the_same_spans_as_the_plain_file(
    store: Store, tmp_path: Path, codec: str
) -> None:
    plain = store.ingest([CHECKOUT], run="plain")
    packed = _write(tmp_path, codec, CHECKOUT.read_bytes())
    report = store.ingest([packed], run=codec)
    assert (report.spans_added, report.skipped) == (plain.spans_added, 0)
    assert report.files[0].format == "otlp-json"
    columns = "s.trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns"
    rows = {
        run: store.con.execute(
            f"SELECT {columns} FROM spans s JOIN runs r USING (run_id) WHERE r.name = ? "
            "ORDER BY s.span_id",
            [run],
        ).fetchall()
        for run in ("plain", codec)
    }
    assert rows["plain"] == rows[codec] and rows["plain"]


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_a_cut_short_file_keeps_its_complete_lines_and_names_the_cut(
    tmp_path: Path, codec: str
) -> None:
    # big enough that the cut falls after the head detection reads
    data = CHECKOUT.read_bytes() * 400
    whole = _write(tmp_path, codec, data).read_bytes()
    path = tmp_path / f"cut.jsonl{WRITERS[codec][0]}"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    result = CliRunner().invoke(
        cli, ["ingest", str(path), "--run", "r", "--db", str(tmp_path / "s.duckdb")]
    )
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "spans added" in result.output
    assert f"{path}:" in result.output
    assert f"{codec} stream is damaged or cut short after" in result.output


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_a_small_file_cut_short_keeps_what_decompresses(
    store: Store, tmp_path: Path, codec: str
) -> None:
    whole = _write(tmp_path, codec, CHECKOUT.read_bytes()).read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(whole[:-12])
    if codec == "bzip2":  # one block, cut: nothing decompresses, so the file is an error
        with pytest.raises(DamagedStreamError, match="bzip2 stream is damaged or cut short"):
            store.ingest([path], run="r")
    else:
        try:
            report = store.ingest([path], run="r")
        except InputError as error:  # the cut came before the first whole line
            assert error.reason.startswith(
                f"nothing could be read from this file: {codec} stream is damaged or cut short"
            )
        else:
            assert report.spans_added > 0
            assert f"{codec} stream is damaged or cut short" in report.files[0].problems[-1].reason
    with pytest.raises(DamagedStreamError, match=f"{codec} stream is damaged or cut short") as e:
        read_all(path)
    assert e.value.path == path


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_damage_inside_the_stream_is_reported(tmp_path: Path, codec: str) -> None:
    whole = bytearray(_write(tmp_path, codec, CHECKOUT.read_bytes() * 50).read_bytes())
    for i in range(len(whole) // 3, len(whole) // 3 + 64):
        whole[i] ^= 0x5A
    path = tmp_path / "damaged"
    path.write_bytes(bytes(whole))
    with pytest.raises(InputError, match="damaged or cut short"):
        read_all(path)


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_the_bound_stops_a_file_that_expands_too_far(
    store: Store, tmp_path: Path, codec: str
) -> None:
    path = _write(tmp_path, codec, b"0" * 300_000 + b"\n")
    with expansion_limit(100_000), pytest.raises(ExpansionLimitError) as refused:
        read_all(path)
    assert str(refused.value) == (
        f"{path}: {codec} content expands past 97.66 KiB (the bound on decompressed bytes "
        "per file); if the file is meant to be that large, raise the bound "
        "(ingest --max-expanded, or max_expanded_bytes=)"
    )
    with expansion_limit(300_001):
        assert len(read_all(path)) == 300_001  # exactly at the bound is allowed
    spans = _write(tmp_path, codec, CHECKOUT.read_bytes() * 20, stem="many.jsonl")
    with pytest.raises(ExpansionLimitError, match=rf"^{spans}: {codec} content expands past 1 KiB"):
        store.ingest([spans], run="bounded", max_expanded_bytes=1024)


def test_the_bound_is_not_for_plain_files_and_the_cli_takes_a_size(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(CHECKOUT.read_bytes())
    with expansion_limit(10):
        assert read_all(plain) == CHECKOUT.read_bytes()
    packed = _write(tmp_path, "xz", CHECKOUT.read_bytes() * 20)
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["ingest", str(packed), "--run", "r", "--max-expanded", "2K", "--db", db]
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {packed}: xz content expands past 2 KiB (the bound on decompressed bytes per "
        "file); if the file is meant to be that large, raise the bound (ingest --max-expanded, "
        "or max_expanded_bytes=)\n"
    )
    result = runner.invoke(
        cli, ["ingest", str(packed), "--run", "r", "--max-expanded", "1M", "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run 'r': 5 spans added from 1 file(s)")
    result = runner.invoke(cli, ["ingest", str(packed), "--run", "r", "--max-expanded", "lots"])
    assert result.exit_code == 2
    assert "not a size: 'lots'" in result.output


def test_an_empty_compressed_file_is_an_empty_file(store: Store, tmp_path: Path) -> None:
    for codec in WRITERS:
        path = _write(tmp_path, codec, b"", stem=f"empty-{codec}.jsonl")
        assert read_all(path) == b""
        with pytest.raises(InputError, match="empty file: no spans to read"):
            store.ingest([path], run="r")


def test_text_that_starts_like_a_magic_is_not_taken_for_it() -> None:
    assert codec_for(b"BZh9 is how my notes start\n") is None
    assert codec_for(b"") is None
    assert codec_for(b"\x1f") is None


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_codec_suffixes_are_stripped_for_companion_names(codec: str) -> None:
    suffix = WRITERS[codec][0]
    assert without_codec_suffix(f"q1.json{suffix}") == "q1.json"
    assert without_codec_suffix(f"pool.jsonl{suffix}") == "pool.jsonl"
    assert without_codec_suffix(suffix) == suffix
    assert without_codec_suffix("q1.json") == "q1.json"


def test_run_directory_companions_may_use_any_codec(store: Store, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(DATA / "rundir" / "tiny", run)
    samples = sorted(run.rglob("*.jsonl"))
    assert samples
    for i, path in enumerate(samples):
        codec = sorted(WRITERS)[i % len(WRITERS)]
        path.with_name(path.name + WRITERS[codec][0]).write_bytes(
            WRITERS[codec][1](path.read_bytes())
        )
        path.unlink()
    packed = store.ingest([run], run="packed")
    plain = store.ingest([DATA / "rundir" / "tiny"], run="plain")
    assert packed.companion_rows == plain.companion_rows and packed.companion_rows
    assert packed.spans_added == plain.spans_added


@pytest.mark.parametrize("codec", sorted(WRITERS))
def test_a_plan_file_compressed_keeps_its_statement(
    store: Store, tmp_path: Path, codec: str
) -> None:
    plan = DATA / "plans" / "pg-psql-analyze.txt"
    _write(tmp_path, codec, plan.read_bytes(), stem="q1.txt")
    (tmp_path / "q1.sql").write_text((DATA / "plans" / "pg-psql-analyze.sql").read_text())
    report = store.ingest([tmp_path], run="r")
    assert report.plans_added == 1 and report.passed_over == []
    statement = store.sql("SELECT statement FROM plans")["statement"][0]
    assert statement == (DATA / "plans" / "pg-psql-analyze.sql").read_text().strip()


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
            max_size=40,
        )
    ),
    codec=st.sampled_from(sorted(WRITERS)),
    block=st.integers(min_value=1, max_value=64),
)
def test_lines_survive_any_codec_and_block_size(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], codec: str, block: int
) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    path = _write(tmp_path_factory.mktemp("p"), codec, data)
    numbered = [
        (n, line)
        for batch in iter_line_batches(path, block_bytes=block)
        for n, line in zip(batch.numbers, batch.lines, strict=True)
    ]
    expected = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    assert numbered == expected
    with open_bytes(path) as stream:
        assert stream.read() == data


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=2000), codec=st.sampled_from(sorted(WRITERS)), cut=st.integers(1, 40)
)
def test_any_cut_is_an_input_error_or_the_whole_content(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, codec: str, cut: int
) -> None:
    # one stream or frame each: a cut exactly between two zstd frames leaves a
    # valid, shorter file that no reader could tell from a whole one
    one_stream = {**{n: w[1] for n, w in WRITERS.items()}, **ONE_FRAME}
    path = tmp_path_factory.mktemp("c") / "data"
    whole = one_stream[codec](data)
    path.write_bytes(whole[: max(0, len(whole) - cut)])
    try:
        got = read_all(path)
    except InputError:
        return
    # a cut that removed only a trailer the reader does not need cannot lose content
    assert got == data or not path.read_bytes() or codec_of(path) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * 1024**3),
        ("512M", 512 * 1024**2),
        ("1.5k", 1536),
        ("100", 100),
        ("3GiB", 3 * 1024**3),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_reads_back_close(n: int) -> None:
    shown = format_size(n)
    back = parse_size(shown.replace(" bytes", "").replace(" ", ""))
    assert abs(back - n) <= max(1, n) * 0.001


def test_a_non_positive_bound_is_refused() -> None:
    with pytest.raises(InputError, match="must be positive"), expansion_limit(0):
        pass
