"""Tests for purger.names.sources: text, table, gzip, stdin, sample and PEP 691 names sources."""

from __future__ import annotations

import base64
import gc
import gzip
import io
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from purger.errors import InputError, UnavailableError, UsageError
from purger.names.nameset import Record, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import (
    MAX_LINE_CHARS,
    PEP691_JSON,
    SAMPLE_NAME,
    NamesSource,
    SourceFormat,
    fetch_simple_index,
    read_records,
    redact_url,
)

URL = "https://pypi.example/simple/"
AUTH_URL = "https://alice:s3cr3t-pw@pypi.example/simple/?token=t0k3n"
SECRETS = ("alice", "s3cr3t-pw", "t0k3n")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


def records(path: Path, **options: Any) -> list[Record]:
    """All records of the file at ``path``, read with NamesSource ``options``."""
    return list(read_records(NamesSource(path=str(path), **options)))


def pep691(*names: str, version: str = "1.1") -> bytes:
    """A PEP 691 project list body naming ``names``."""
    document = {"meta": {"api-version": version}, "projects": [{"name": n} for n in names]}
    return json.dumps(document).encode()


# --- text files ---------------------------------------------------------------------------


def test_text_skips_blanks_and_comments_with_real_line_numbers(tmp_path: Path) -> None:
    """Text sources yield stripped names with their own line numbers, skipping blanks and #."""
    path = write(tmp_path, "names.txt", b"# header\nfoo\n\n   \n  bar  \n#baz\n\tqux\n")
    assert records(path) == [("foo", None, 2), ("bar", None, 5), ("qux", None, 7)]


def test_text_tolerates_bom_and_crlf(tmp_path: Path) -> None:
    """A UTF-8 BOM and CRLF line ends do not leak into names or shift line numbers."""
    path = write(tmp_path, "names.txt", b"\xef\xbb\xbfFoo\r\n\r\n# x\r\nbar \r\n")
    assert records(path) == [("Foo", None, 1), ("bar", None, 4)]


def test_text_keeps_valid_non_ascii_names(tmp_path: Path) -> None:
    """UTF-8 text decodes to the names as written (validity is the names module's call)."""
    path = write(tmp_path, "names.txt", "café\nnaïve\n".encode())
    assert [raw for raw, _, _ in records(path)] == ["café", "naïve"]


def test_text_source_feeds_a_name_set(tmp_path: Path) -> None:
    """A text file with duplicates and invalid names becomes a merged, sorted NameSet."""
    path = write(tmp_path, "names.txt", b"Zope.Interface\nrequests\nzope-interface\nbad name\n")
    source = NamesSource(path=str(path))
    result = build_name_set(read_records(source), where=source.where)
    assert result.names == ("requests", "zope-interface")
    assert result.weights == (1.0, 2.0)
    assert (result.merged, result.invalid) == (1, 1)


def test_strict_invalid_name_reports_file_line(tmp_path: Path) -> None:
    """With strict, an invalid name in a file is an error at that file's line."""
    path = write(tmp_path, "names.txt", b"# c\nok\n\nnot ok\n")
    source = NamesSource(path=str(path))
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:4: 'not ok' is not a valid"):
        build_name_set(read_records(source), where=source.where, strict=True)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """A file that does not exist is an InputError naming it."""
    path = tmp_path / "absent.txt"
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: cannot read: No such file"):
        records(path)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"# only a comment\n  \n"])
def test_empty_text_has_no_names(tmp_path: Path, data: bytes) -> None:
    """A text file without names is an InputError naming the file."""
    path = write(tmp_path, "empty.txt", data)
    source = NamesSource(path=str(path))
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: no names to plan"):
        build_name_set(read_records(source), where=source.where)


def test_undecodable_text_reports_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are an InputError with the file, line and character."""
    path = write(tmp_path, "names.txt", b"good\n# skipped \xff comment\nab\xffc\n")
    pattern = rf"^{re.escape(str(path))}:3: character 3 is not valid UTF-8"
    with pytest.raises(InputError, match=pattern):
        records(path)


def test_overlong_text_line_is_an_error(tmp_path: Path) -> None:
    """A line over 1,000 characters is an InputError at its line; 1,000 exactly is fine."""
    ok = b"a" * MAX_LINE_CHARS
    path = write(tmp_path, "names.txt", ok + b"\n" + b"b" * (MAX_LINE_CHARS + 1) + b"\n")
    pattern = rf"^{re.escape(str(path))}:2: line is over 1,000 characters long"
    with pytest.raises(InputError, match=pattern):
        records(path)
    assert records(write(tmp_path, "ok.txt", ok)) == [(ok.decode(), None, 1)]


@pytest.mark.parametrize("fmt", [SourceFormat.AUTO, SourceFormat.TEXT])
def test_weight_column_on_text_is_a_usage_error(tmp_path: Path, fmt: SourceFormat) -> None:
    """A weight column with a plain text source is a UsageError raised at once."""
    path = write(tmp_path, "names.txt", b"a\n")
    with pytest.raises(UsageError, match="--weight-column needs a TSV or CSV source"):
        read_records(NamesSource(path=str(path), format=fmt, weight_column="downloads"))


# --- format detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("names.tsv", SourceFormat.TSV),
        ("names.TSV.gz", SourceFormat.TSV),
        ("names.csv", SourceFormat.CSV),
        ("top.v2.csv.gz", SourceFormat.CSV),
        ("names.txt", SourceFormat.TEXT),
        ("names.txt.gz", SourceFormat.TEXT),
        ("names", SourceFormat.TEXT),
        ("-", SourceFormat.TEXT),
    ],
)
def test_auto_format_follows_suffix(name: str, fmt: SourceFormat) -> None:
    """Auto format reads .tsv/.csv (before an optional .gz), anything else is text."""
    assert NamesSource(path=name).resolved_format() is fmt


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    """An explicit format reads a .txt file as a table."""
    path = write(tmp_path, "names.txt", b"rank\tname\n1\tfoo\n")
    assert records(path, format=SourceFormat.TSV) == [("foo", None, 2)]


# --- tables -------------------------------------------------------------------------------


def test_tsv_reads_name_and_weight_columns(tmp_path: Path) -> None:
    """A TSV yields the chosen name and weight cells by header, with file line numbers."""
    data = b"downloads\tpkg\textra\n10\tFoo\tx\n\n2.5\t bar \ty\n"
    path = write(tmp_path, "top.tsv", data)
    got = records(path, name_column="pkg", weight_column="downloads")
    assert got == [("Foo", "10", 2), ("bar", "2.5", 4)]


def test_csv_with_bom_crlf_and_quotes(tmp_path: Path) -> None:
    """A CSV with a BOM, CRLF and quoted cells yields its names and weights."""
    data = b'\xef\xbb\xbf name ,weight\r\n"foo",3\r\n"a,b",1\r\nbaz,"7"\r\n'
    path = write(tmp_path, "top.csv", data)
    got = records(path, weight_column="weight")
    assert got == [("foo", "3", 2), ("a,b", "1", 3), ("baz", "7", 4)]


def test_table_weights_flow_into_name_set(tmp_path: Path) -> None:
    """Weights from a CSV column are summed per normalized name."""
    path = write(tmp_path, "top.csv", b"name,downloads\nFoo,2\nfoo,3\nbar,0.5\n")
    source = NamesSource(path=str(path), weight_column="downloads")
    result = build_name_set(
        read_records(source), where=source.where, weight=WeightSpec(column="downloads")
    )
    assert dict(zip(result.names, result.weights, strict=True)) == {"bar": 0.5, "foo": 5.0}


def test_bad_weight_in_table_names_file_and_line(tmp_path: Path) -> None:
    """A non-numeric weight cell is reported at its file and physical line."""
    path = write(tmp_path, "top.tsv", b"name\tdownloads\na\t1\n\nb\tlots\n")
    source = NamesSource(path=str(path), weight_column="downloads")
    pattern = rf"^{re.escape(str(path))}:4: weight 'lots' in column 'downloads' is not a number"
    with pytest.raises(InputError, match=pattern):
        build_name_set(
            read_records(source), where=source.where, weight=WeightSpec(column="downloads")
        )


@pytest.mark.parametrize(
    ("options", "flag"),
    [({"name_column": "project"}, "--name-column"), ({"weight_column": "hits"}, "--weight-column")],
)
def test_missing_column_lists_the_header(
    tmp_path: Path, options: dict[str, str], flag: str
) -> None:
    """A name or weight column absent from the header is an error that lists the header."""
    path = write(tmp_path, "top.tsv", b"name\tdownloads\nfoo\t1\n")
    wanted = next(iter(options.values()))
    with pytest.raises(InputError) as caught:
        records(path, **options)
    message = str(caught.value)
    assert message.startswith(f"{path}: no column {wanted!r} ({flag})")
    assert "'name', 'downloads'" in message


def test_short_row_is_an_error_at_its_line(tmp_path: Path) -> None:
    """A row without the name field is an InputError with its line and field counts."""
    path = write(tmp_path, "top.csv", b"rank,name\n1,foo\n2\n")
    pattern = rf"^{re.escape(str(path))}:3: row has 1 fields; column 'name' is field 2"
    with pytest.raises(InputError, match=pattern):
        records(path)


def test_row_without_weight_cell_gives_empty_cell(tmp_path: Path) -> None:
    """A row that stops before the weight column yields an empty weight cell (unranked)."""
    path = write(tmp_path, "top.csv", b"name,rank\nfoo,1\nbar\n")
    assert records(path, weight_column="rank") == [("foo", "1", 2), ("bar", "", 3)]


def test_empty_table_needs_a_header(tmp_path: Path) -> None:
    """A table file with no bytes is an InputError asking for a header row."""
    path = write(tmp_path, "top.tsv", b"")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: empty file: .*header row"):
        records(path)


def test_header_only_table_has_no_names(tmp_path: Path) -> None:
    """A table with a header and no rows has no names to plan."""
    path = write(tmp_path, "top.csv", b"name,downloads\n")
    source = NamesSource(path=str(path))
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: no names to plan"):
        build_name_set(read_records(source), where=source.where)


def test_malformed_csv_row_is_an_error(tmp_path: Path) -> None:
    """A CSV quoting error is an InputError at its line."""
    path = write(tmp_path, "top.csv", b'name\nfoo\n"bar"x\n')
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:3: malformed row"):
        records(path)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"name\tw\nok\t1\nb\xffd\t1\n", 3),
        (b"name\tw\nok\t1\nfine\t\xff\n", 3),
        (b"na\xffme\tw\nok\t1\n", 1),
    ],
)
def test_undecodable_table_cell_reports_line(tmp_path: Path, data: bytes, line: int) -> None:
    """Bytes that are not UTF-8 in a header, name or weight cell are reported at their line."""
    path = write(tmp_path, "top.tsv", data)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:{line}: .*not valid UTF-8"):
        records(path, name_column="name", weight_column="w")


def test_overlong_table_cell_is_an_error(tmp_path: Path) -> None:
    """A name cell over 1,000 characters is an InputError at its line."""
    path = write(tmp_path, "top.tsv", b"name\nok\n" + b"x" * (MAX_LINE_CHARS + 1) + b"\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:3: line is over 1,000"):
        records(path)


# --- gzip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["names.txt.gz", "names.txt", "names"])
def test_gzip_text_is_read_by_magic_bytes(tmp_path: Path, name: str) -> None:
    """A gzip text file is read transparently, with or without a .gz suffix."""
    path = write(tmp_path, name, gzip.compress(b"\xef\xbb\xbffoo\r\n# c\r\nbar\n"))
    assert records(path) == [("foo", None, 1), ("bar", None, 3)]


def test_gzip_table_is_read(tmp_path: Path) -> None:
    """A .tsv.gz table yields its name and weight columns."""
    path = write(tmp_path, "top.tsv.gz", gzip.compress(b"name\trank\nfoo\t1\nbar\t\n"))
    assert records(path, weight_column="rank") == [("foo", "1", 2), ("bar", "", 3)]


def test_gzip_undecodable_bytes_report_line(tmp_path: Path) -> None:
    """Line numbers of bad UTF-8 count lines of the decompressed text."""
    path = write(tmp_path, "names.gz", gzip.compress(b"a\nb\n\nc\xfe\n"))
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:4: character 2 is not valid"):
        records(path)


NAMES_TABLE = b"name\n" + b"".join(b"name-%d\n" % i for i in range(2000))


def _truncated() -> bytes:
    return gzip.compress(NAMES_TABLE)[:-12]


def _corrupt() -> bytes:
    data = bytearray(gzip.compress(NAMES_TABLE))
    data[-6] ^= 0xFF  # inside the CRC/length trailer
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [_truncated(), _corrupt(), b"\x1f\x8b" + b"not really gzip" * 4],
    ids=["truncated", "bad-trailer", "garbage"],
)
@pytest.mark.parametrize("name", ["names.txt.gz", "top.tsv.gz"])
def test_broken_gzip_is_an_input_error(tmp_path: Path, data: bytes, name: str) -> None:
    """Truncated or corrupt gzip data is an InputError naming the file."""
    path = write(tmp_path, name, data)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: broken gzip data"):
        records(path)


# --- stdin --------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("peekable", [False, True], ids=["raw", "buffered"])
def test_stdin_is_read_and_left_open(compress: bool, peekable: bool) -> None:
    """'-' reads the given binary stdin, plain or gzip, and leaves it open for the caller."""
    data = b"foo\n#c\nbar\n"
    raw = io.BytesIO(gzip.compress(data) if compress else data)
    stdin = io.BufferedReader(raw) if peekable else raw
    got = list(read_records(NamesSource(path="-"), stdin=stdin))
    assert got == [("foo", None, 1), ("bar", None, 3)]
    gc.collect()  # a wrapper that owned the stream would close it when collected
    assert not stdin.closed
    assert not raw.closed


def test_stdin_table_and_errors_say_stdin() -> None:
    """A table on stdin reads by header, and its errors name <stdin>."""
    source = NamesSource(path="-", format=SourceFormat.CSV, weight_column="w")
    got = list(read_records(source, stdin=io.BytesIO(b"name,w\nfoo,1\n")))
    assert got == [("foo", "1", 2)]
    with pytest.raises(InputError, match=r"^<stdin>:3: character 1 is not valid UTF-8"):
        list(read_records(source, stdin=io.BytesIO(b"name,w\nfoo,1\n\xff,2\n")))


def test_empty_stdin_has_no_names() -> None:
    """Empty stdin is an InputError naming <stdin>."""
    source = NamesSource(path="-")
    assert source.where == "<stdin>"
    with pytest.raises(InputError, match=r"^<stdin>: no names to plan"):
        build_name_set(read_records(source, stdin=io.BytesIO(b"")), where=source.where)


def test_stdin_without_stream_is_a_usage_error() -> None:
    """'-' without a stdin stream is a UsageError."""
    with pytest.raises(UsageError, match="no stdin was given"):
        list(read_records(NamesSource(path="-")))


# --- bundled sample -----------------------------------------------------------------------


def _sample_rows() -> list[list[str]]:
    resource = resources.files("purger.data").joinpath("pypi-sample.tsv.gz")
    lines = gzip.decompress(resource.read_bytes()).decode().splitlines()
    assert lines[0].split("\t") == ["name", "download_rank"]
    return [line.split("\t") for line in lines[1:]]


def test_sample_yields_every_row_with_its_rank() -> None:
    """The sample reads as a TSV of names and download_rank cells, one record per row."""
    source = NamesSource.sample(weight_column="download_rank")
    assert source.where == SAMPLE_NAME
    got = list(read_records(source))
    expected = [(name, rank, line) for line, (name, rank) in enumerate(_sample_rows(), start=2)]
    assert got == expected
    assert len(got) > 1000


def test_sample_builds_a_zipf_weighted_name_set() -> None:
    """The sample's ranks give 1/rank weights, unranked names 1/(largest rank + 1)."""
    rows = _sample_rows()
    ranks = {name: int(rank) for name, rank in rows if rank}
    top = min(ranks, key=ranks.__getitem__)
    unranked = next(name for name, rank in rows if not rank)
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    result = build_name_set(
        read_records(NamesSource.sample(weight_column="download_rank")),
        where=SAMPLE_NAME,
        weight=spec,
        strict=True,
    )
    weights = dict(zip(result.names, result.weights, strict=True))
    assert weights[top] == 1.0 / ranks[top]
    assert weights[unranked] == 1.0 / (max(ranks.values()) + 1)
    assert result.records == len(rows)
    assert result.invalid == 0


# --- PEP 691 Simple API -------------------------------------------------------------------


def _add_index(httpx_mock: HTTPXMock, body: bytes, **matchers: Any) -> None:
    httpx_mock.add_response(headers={"Content-Type": PEP691_JSON}, content=body, **matchers)


def test_fetch_returns_project_records_and_asks_for_pep691(httpx_mock: HTTPXMock) -> None:
    """The Simple API list becomes one record per project and the request asks for PEP 691."""
    _add_index(httpx_mock, pep691("Django", " requests ", "zope.interface"), url=URL)
    with httpx.Client() as client:
        got = fetch_simple_index(client, URL)
    assert got == [("Django", None, 1), ("requests", None, 2), ("zope.interface", None, 3)]
    (request,) = httpx_mock.get_requests()
    assert request.headers["Accept"].startswith(f"{PEP691_JSON}, ")  # JSON preferred
    assert request.method == "GET"


def test_fetch_accepts_content_type_parameters(httpx_mock: HTTPXMock) -> None:
    """A PEP 691 content type with parameters is still PEP 691."""
    httpx_mock.add_response(
        headers={"Content-Type": f"{PEP691_JSON}; charset=utf-8"}, content=pep691("a")
    )
    with httpx.Client() as client:
        assert fetch_simple_index(client, URL) == [("a", None, 1)]


def test_fetch_records_feed_a_name_set(httpx_mock: HTTPXMock) -> None:
    """Simple API names normalize and merge like file names, with the URL as where."""
    _add_index(httpx_mock, pep691("Foo_Bar", "foo-bar", "baz"))
    with httpx.Client() as client:
        result = build_name_set(fetch_simple_index(client, URL), where=redact_url(URL))
    assert result.names == ("baz", "foo-bar")
    assert result.merged == 1


def test_progress_reports_growing_bytes_and_total(httpx_mock: HTTPXMock) -> None:
    """on_progress gets a growing received count and the Content-Length total."""
    body = pep691(*(f"project-{i}" for i in range(50)))
    chunks = [body[:100], body[100:300], body[300:]]
    httpx_mock.add_response(
        headers={"Content-Type": PEP691_JSON, "Content-Length": str(len(body))},
        stream=IteratorStream(chunks),
    )
    calls: list[tuple[int, int | None]] = []
    with httpx.Client() as client:
        got = fetch_simple_index(client, URL, on_progress=lambda n, t: calls.append((n, t)))
    assert len(got) == 50
    assert calls == [(100, len(body)), (300, len(body)), (len(body), len(body))]


def test_progress_of_an_unstreamed_body(httpx_mock: HTTPXMock) -> None:
    """A body the transport had read already is reported once, whole, with its length."""
    body = pep691("a", "b", "c")
    _add_index(httpx_mock, body)
    calls: list[tuple[int, int | None]] = []
    with httpx.Client() as client:
        fetch_simple_index(client, URL, on_progress=lambda n, t: calls.append((n, t)))
    assert calls == [(len(body), len(body))]


def test_progress_total_is_none_without_content_length(httpx_mock: HTTPXMock) -> None:
    """Without Content-Length on_progress gets None as the total."""
    body = pep691("a", "b")
    httpx_mock.add_response(
        headers={"Content-Type": PEP691_JSON}, stream=IteratorStream([body[:5], body[5:]])
    )
    calls: list[tuple[int, int | None]] = []
    with httpx.Client() as client:
        fetch_simple_index(client, URL, on_progress=lambda n, t: calls.append((n, t)))
    assert calls == [(5, None), (len(body), None)]


def test_progress_counts_wire_bytes_of_compressed_body(httpx_mock: HTTPXMock) -> None:
    """With a gzip Content-Encoding the count ends at Content-Length, not the decoded size."""
    body = pep691(*(f"project-{i}" for i in range(500)))
    wire = gzip.compress(body)
    headers = {
        "Content-Type": PEP691_JSON,
        "Content-Encoding": "gzip",
        "Content-Length": str(len(wire)),
    }
    half = len(wire) // 2
    httpx_mock.add_response(headers=headers, stream=IteratorStream([wire[:half], wire[half:]]))
    calls: list[tuple[int, int | None]] = []
    with httpx.Client() as client:
        got = fetch_simple_index(client, URL, on_progress=lambda n, t: calls.append((n, t)))
    assert len(got) == 500
    assert len(body) > 2 * len(wire)
    assert calls == [(half, len(wire)), (len(wire), len(wire))]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_fetch_4xx_is_an_input_error(httpx_mock: HTTPXMock, status: int) -> None:
    """A 4xx answer is an InputError naming the URL and the status."""
    httpx_mock.add_response(status_code=status, url=URL)
    with httpx.Client() as client, pytest.raises(InputError) as caught:
        fetch_simple_index(client, URL)
    assert str(caught.value) == f"{URL}: server answered {status}"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fetch_5xx_is_unavailable(httpx_mock: HTTPXMock, status: int) -> None:
    """A 5xx answer is an UnavailableError naming the URL and the status."""
    httpx_mock.add_response(status_code=status)
    with httpx.Client() as client, pytest.raises(UnavailableError) as caught:
        fetch_simple_index(client, URL)
    assert str(caught.value) == f"{URL}: server answered {status}"


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_fetch_network_failure_is_unavailable(httpx_mock: HTTPXMock, error: Exception) -> None:
    """Network errors and timeouts are an UnavailableError naming the URL and the error."""
    httpx_mock.add_exception(error)
    with httpx.Client() as client, pytest.raises(UnavailableError) as caught:
        fetch_simple_index(client, URL)
    assert str(caught.value) == f"{URL}: {type(error).__name__}: {error}"


def test_fetch_broken_content_encoding_is_unavailable(httpx_mock: HTTPXMock) -> None:
    """A body that fails its Content-Encoding is an UnavailableError, not a traceback."""
    httpx_mock.add_response(
        headers={"Content-Type": PEP691_JSON, "Content-Encoding": "gzip"},
        stream=IteratorStream([b"not gzip at all"]),
    )
    with httpx.Client() as client, pytest.raises(UnavailableError, match="DecodingError"):
        fetch_simple_index(client, URL)


def test_fetch_redirect_loop_is_unavailable(httpx_mock: HTTPXMock) -> None:
    """A redirect loop is an UnavailableError, not a traceback."""
    httpx_mock.add_response(status_code=301, headers={"Location": URL}, is_reusable=True)
    with (
        httpx.Client(follow_redirects=True, max_redirects=3) as client,
        pytest.raises(UnavailableError, match="TooManyRedirects"),
    ):
        fetch_simple_index(client, URL)


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Content-Type": "text/html"}, b"<html></html>", "HTML page with no project links"),
        ({"Content-Type": "text/plain"}, b"a\nb\n", "answered text/plain, not "),
        ({}, b"", "answered no content type"),
        ({"Content-Type": PEP691_JSON}, b"{not json", "body is not JSON"),
        ({"Content-Type": PEP691_JSON}, b"\xff\xfe\xfd", "body is not JSON"),
        ({"Content-Type": PEP691_JSON}, b"[]", "not a JSON object"),
        (
            {"Content-Type": PEP691_JSON},
            pep691("a", version="2.0"),
            "unsupported api-version '2.0'",
        ),
        ({"Content-Type": PEP691_JSON}, b'{"projects": []}', "unsupported api-version ''"),
        ({"Content-Type": PEP691_JSON}, b'{"meta": null}', "unsupported api-version ''"),
        ({"Content-Type": PEP691_JSON}, b'{"meta": "1.0"}', "unsupported api-version ''"),
        ({"Content-Type": PEP691_JSON}, b'{"meta": {"api-version": "1.0"}}', "no 'projects' list"),
        (
            {"Content-Type": PEP691_JSON},
            b'{"meta": {"api-version": "1.0"}, "projects": [{"name": "a"}, {"nom": "b"}]}',
            "project 2 has no string 'name'",
        ),
        (
            {"Content-Type": PEP691_JSON},
            b'{"meta": {"api-version": "1.0"}, "projects": ["a"]}',
            "project 1 has no string 'name'",
        ),
    ],
    ids=[
        "html",
        "text",
        "no-type",
        "bad-json",
        "not-utf8",
        "array",
        "v2",
        "no-meta",
        "null-meta",
        "string-meta",
        "no-projects",
        "nameless",
        "string-project",
    ],
)
def test_fetch_non_pep691_body_is_an_input_error(
    httpx_mock: HTTPXMock, headers: dict[str, str], body: bytes, message: str
) -> None:
    """An answer that is not a PEP 691 JSON project list is an InputError naming the URL."""
    httpx_mock.add_response(headers=headers, content=body)
    with httpx.Client() as client, pytest.raises(InputError) as caught:
        fetch_simple_index(client, URL)
    assert str(caught.value).startswith(f"{URL}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("status", "headers", "body", "exception", "error"),
    [
        (404, {}, b"", None, InputError),
        (503, {}, b"", None, UnavailableError),
        (200, {"Content-Type": "text/html"}, b"<html>", None, InputError),
        (200, {"Content-Type": PEP691_JSON}, b"{", None, InputError),
        (None, {}, b"", httpx.ConnectError(f"cannot connect to {AUTH_URL}"), UnavailableError),
        (None, {}, b"", httpx.ReadTimeout("alice:s3cr3t-pw timed out"), UnavailableError),
        (None, {}, b"", httpx.ProxyError("auth alice/s3cr3t-pw refused"), UnavailableError),
    ],
    ids=["404", "503", "html", "bad-json", "error-quotes-url", "error-quotes-userinfo", "parts"],
)
def test_fetch_errors_never_show_credentials(
    httpx_mock: HTTPXMock,
    status: int | None,
    headers: dict[str, str],
    body: bytes,
    exception: Exception | None,
    error: type[Exception],
) -> None:
    """No error message carries the URL's user name, password or query."""
    if exception is None:
        httpx_mock.add_response(status_code=status or 200, headers=headers, content=body)
    else:
        httpx_mock.add_exception(exception)
    with httpx.Client() as client, pytest.raises(error) as caught:
        fetch_simple_index(client, AUTH_URL)
    message = str(caught.value)
    assert "pypi.example/simple/" in message
    assert not [secret for secret in SECRETS if secret in message]


def test_fetch_error_hides_percent_encoded_password(httpx_mock: HTTPXMock) -> None:
    """A password written percent-encoded in the URL is hidden in either spelling."""
    httpx_mock.add_exception(httpx.ConnectError("login p@ss:w0rd / p%40ss%3Aw0rd failed"))
    with httpx.Client() as client, pytest.raises(UnavailableError) as caught:
        fetch_simple_index(client, "https://bob:p%40ss%3Aw0rd@pypi.example/simple/")
    assert "w0rd" not in str(caught.value)
    assert str(caught.value).startswith("https://***@pypi.example/simple/: ConnectError: login ")


def test_fetch_sends_url_credentials_as_basic_auth(httpx_mock: HTTPXMock) -> None:
    """Credentials in the URL still reach the server, as HTTP basic auth."""
    _add_index(httpx_mock, pep691("a"))
    with httpx.Client() as client:
        fetch_simple_index(client, AUTH_URL)
    (request,) = httpx_mock.get_requests()
    token = base64.b64encode(b"alice:s3cr3t-pw").decode()
    assert request.headers["Authorization"] == f"Basic {token}"


@pytest.mark.parametrize(
    "url",
    [
        "pypi.example/simple/",
        "ftp://alice:s3cr3t-pw@pypi.example/",
        "https://alice:s3cr3t-pw@[::1/",
    ],
)
def test_fetch_unusable_url_is_an_input_error(url: str) -> None:
    """A URL without http(s) or that does not parse is an InputError without credentials."""
    with httpx.Client() as client, pytest.raises(InputError, match="not a usable URL") as caught:
        fetch_simple_index(client, url)
    assert not [secret for secret in SECRETS if secret in str(caught.value)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pypi.example/simple/", "https://pypi.example/simple/"),
        ("https://alice:s3cr3t-pw@pypi.example/simple/", "https://***@pypi.example/simple/"),
        (
            "https://alice@pypi.example:8443/simple/?token=t0k3n",
            "https://***@pypi.example:8443/simple/",
        ),
        ("https://[::1", "https://[::1"),
        ("https://alice:s3cr3t-pw@[::1/?token=t0k3n", "https://***@[::1/"),
    ],
)
def test_redact_url_hides_user_password_and_query(url: str, expected: str) -> None:
    """redact_url masks user name and password, drops the query and survives invalid
    URLs (it is the shared helper of purger.model, re-exported here)."""
    assert redact_url(url) == expected
