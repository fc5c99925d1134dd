"""Names sources: text and table files (plain or gzip), stdin, the bundled sample, and a
Simple API project list (PEP 691 JSON or PEP 503 HTML). Each yields
:data:`purger.names.nameset.Record` tuples.

This is the I/O edge in front of the pure ``names`` module: it owns decoding, line
numbers and the one-line errors that point at a file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import IO, Final, Literal, TypeAlias

import httpx

from purger.errors import InputError, UnavailableError, UsageError
from purger.model import redact_url, scrub, url_secrets
from purger.names.nameset import Record, forbidden_character
from purger.names.simple_index import ACCEPT, HTML_TYPES, PEP691_JSON, html_records, json_records

__all__ = [
    "MAX_LINE_CHARS",
    "PEP691_JSON",
    "SAMPLE_NAME",
    "NamesSource",
    "RawRows",
    "SourceFormat",
    "fetch_simple_index",
    "no_columns_message",
    "read_records",
    "redact_url",
]

#: A longer line is not a name; it is a wrong file.
MAX_LINE_CHARS: Final = 1000
#: The ``where`` of the bundled sample of PyPI names (``--sample``).
SAMPLE_NAME: Final = "<sample>"
_SAMPLE_RESOURCE: Final = "pypi-sample.tsv.gz"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_STDIN: Final = "-"
_INVALID_UTF8_HINT: Final = "is not valid UTF-8"

#: Per name as written, the template cells of each of its rows (see :func:`read_records`).
RawRows: TypeAlias = dict[str, list[dict[str, str]]]


class SourceFormat(StrEnum):
    """How a names file is laid out. ``auto`` reads the suffix: ``.tsv``, ``.csv``, else text."""

    AUTO = "auto"
    TEXT = "text"
    TSV = "tsv"
    CSV = "csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class NamesSource:
    """A file, ``-`` for stdin, or the bundled sample, and how to read it."""

    path: str
    format: SourceFormat = SourceFormat.AUTO
    name_column: str = "name"
    weight_column: str | None = None
    #: Table columns kept per row for template placeholders (``{version}``).
    columns: tuple[str, ...] = ()

    @classmethod
    def sample(cls, *, weight_column: str | None = None) -> NamesSource:
        """The bundled sample: real PyPI names with their ``download_rank``."""
        return cls(path=SAMPLE_NAME, format=SourceFormat.TSV, weight_column=weight_column)

    @property
    def where(self) -> str:
        return "<stdin>" if self.path == _STDIN else self.path

    def resolved_format(self) -> SourceFormat:
        if self.format is not SourceFormat.AUTO:
            return self.format
        suffixes = [s.lower() for s in Path(self.path).suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes.pop()
        last = suffixes[-1] if suffixes else ""
        return {".tsv": SourceFormat.TSV, ".csv": SourceFormat.CSV}.get(last, SourceFormat.TEXT)


def read_records(
    source: NamesSource,
    *,
    stdin: IO[bytes] | None = None,
    rows: RawRows | None = None,
) -> Iterator[Record]:
    """Yield ``(name, weight cell, line)`` from ``source``; ``stdin`` serves ``-``.

    With ``source.columns``, the cells of those columns are appended to ``rows``, one
    mapping per row, under the name as written.
    Raises :class:`InputError` naming the file and line for anything unreadable.
    """
    fmt = source.resolved_format()
    if fmt is SourceFormat.TEXT:
        if source.weight_column is not None:
            raise UsageError("--weight-column needs a TSV or CSV source (see --format)")
        if source.columns:
            raise UsageError(no_columns_message(source.columns, source.where))
        return _text_records(source, stdin)
    delimiter = "\t" if fmt is SourceFormat.TSV else ","
    return _table_records(source, stdin, delimiter=delimiter, rows=rows)


def no_columns_message(columns: tuple[str, ...], where: str) -> str:
    """Why a template naming ``columns`` cannot work on a source with names only."""
    wanted = ", ".join(f"{{{c}}}" for c in columns)
    return (
        f"unknown placeholder {wanted}: {where} has names only; a column placeholder "
        "needs a TSV or CSV source with that column (see --format)"
    )


@contextmanager
def _open_binary(source: NamesSource, stdin: IO[bytes] | None) -> Iterator[IO[bytes]]:
    """Open the source for binary reading, transparently un-gzipping by magic bytes."""
    with ExitStack() as stack:
        buffered: IO[bytes]
        if source.path == _STDIN:
            if stdin is None:
                raise UsageError("'-' reads names from stdin, but no stdin was given")
            # Not closed here: stdin belongs to the caller.
            if hasattr(stdin, "peek"):
                buffered = stdin
            else:
                buffered = io.BufferedReader(stdin)  # type: ignore[type-var]
                # Detached when done: a collected BufferedReader closes what it wraps.
                stack.callback(buffered.detach)
        elif source.path == SAMPLE_NAME:
            sample = resources.files("purger.data").joinpath(_SAMPLE_RESOURCE)
            buffered = stack.enter_context(sample.open("rb"))
        else:
            try:
                buffered = stack.enter_context(open(source.path, "rb"))
            except OSError as err:
                raise InputError(
                    f"cannot read: {err.strerror or err}", where=source.where
                ) from None
        if buffered.peek(2)[:2] == _GZIP_MAGIC:  # type: ignore[attr-defined]
            unzipped = stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))
            # BufferedReader reads the gzip stream in large chunks; GzipFile's own line
            # iteration is Python code per line and twice as slow.
            yield stack.enter_context(io.BufferedReader(unzipped))
        else:
            yield buffered


@contextmanager
def _open_text(source: NamesSource, stdin: IO[bytes] | None) -> Iterator[IO[str]]:
    """Open ``source`` as text, tolerating a BOM and CRLF, and turn read failures into
    :class:`InputError`.

    Decoding runs in C with ``surrogateescape``; the readers check only the cells that are
    not ASCII again (:func:`_checked`), so a bad byte is still reported with its line.
    """
    with _open_binary(source, stdin) as raw:
        text = io.TextIOWrapper(
            raw,
            encoding="utf-8-sig",
            errors="surrogateescape",
            newline=None,
        )
        try:
            yield text
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise InputError(f"broken gzip data ({err})", where=source.where) from None
        except OSError as err:
            raise InputError(f"cannot read: {err.strerror or err}", where=source.where) from None
        finally:
            text.detach()  # ``raw`` is closed by _open_binary, or belongs to the caller


def _checked(cell: str, where: str, line: int) -> str:
    """``cell`` if it is valid UTF-8 and of a sane length, else an :class:`InputError`."""
    if len(cell) > MAX_LINE_CHARS:
        raise InputError(
            f"line is over {MAX_LINE_CHARS:,} characters long: is this a names file?",
            where=where,
            line=line,
        )
    if not cell.isascii():
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InputError(
                f"character {err.start + 1} {_INVALID_UTF8_HINT}", where=where, line=line
            ) from None
    return cell


def _text_records(source: NamesSource, stdin: IO[bytes] | None) -> Iterator[Record]:
    where = source.where
    with _open_text(source, stdin) as text:
        for line_no, line in enumerate(text, start=1):
            name = line.strip()
            if name and name[0] != "#":
                yield _checked(name, where, line_no), None, line_no


def _table_records(
    source: NamesSource, stdin: IO[bytes] | None, *, delimiter: str, rows: RawRows | None
) -> Iterator[Record]:
    where = source.where
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with _open_text(source, stdin) as text:
        reader = csv.reader(text, delimiter=delimiter, quoting=quoting, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError("empty file: a table needs a header row", where=where)
            columns = [_checked(cell, where, 1).strip() for cell in header]
            name_at = _column_index(columns, source.name_column, "--name-column", where)
            weight_at = (
                _column_index(columns, source.weight_column, "--weight-column", where)
                if source.weight_column is not None
                else None
            )
            kept = [
                (c, _column_index(columns, c, "a template placeholder", where))
                for c in source.columns
            ]
            for row in reader:
                if not row:  # a blank line
                    continue
                line = reader.line_num
                if name_at >= len(row):
                    raise InputError(
                        f"row has {len(row)} fields; column {source.name_column!r} "
                        f"is field {name_at + 1}",
                        where=where,
                        line=line,
                    )
                name = row[name_at]
                if len(name) > MAX_LINE_CHARS or not name.isascii():  # rare: check closely
                    _checked(name, where, line)
                cell = None
                if weight_at is not None:
                    cell = row[weight_at] if weight_at < len(row) else ""
                    if len(cell) > MAX_LINE_CHARS or not cell.isascii():
                        _checked(cell, where, line)
                if kept and rows is not None:
                    rows.setdefault(name.strip(), []).append(_cells(row, kept, where, line))
                yield name.strip(), cell, line
        except csv.Error as err:
            raise InputError(f"malformed row ({err})", where=where, line=reader.line_num) from None


def _cells(row: list[str], kept: list[tuple[str, int]], where: str, line: int) -> dict[str, str]:
    """The cells a template uses: each present, not empty, and checked like a name."""
    cells = {}
    for column, at in kept:
        cell = _checked(row[at], where, line).strip() if at < len(row) else ""
        if not cell:
            raise InputError(f"empty {column!r} cell: a template needs it", where=where, line=line)
        if bad := forbidden_character(cell):  # a key would carry it as it is
            raise InputError(
                f"{column!r} cell holds {bad}, a control, format or separator character",
                where=where,
                line=line,
            )
        cells[column] = cell
    return cells


def _column_index(columns: list[str], wanted: str, flag: str, where: str) -> int:
    try:
        return columns.index(wanted)
    except ValueError:
        found = ", ".join(repr(c) for c in columns[:8])
        raise InputError(
            f"no column {wanted!r} ({flag}); the header has {found}", where=where
        ) from None


def fetch_simple_index(
    client: httpx.Client,
    url: str,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> list[Record]:
    """Download a Simple API project list and return one record per project.

    PEP 691 JSON is asked for first; a PEP 503 HTML list is read too. ``on_progress(
    received_bytes, total_bytes_or_None)`` is called as data arrives. A URL that is not
    http(s), a 4xx answer or a body that is neither is an :class:`InputError`; a network
    failure, a broken transfer or a 5xx is :class:`UnavailableError`. No message carries
    the URL's user name or password.
    """
    where = redact_url(url)
    try:
        with client.stream("GET", url, headers={"Accept": ACCEPT}) as response:
            if response.status_code >= 500:
                raise UnavailableError(f"{where}: server answered {response.status_code}")
            if response.status_code >= 400:
                raise InputError(f"server answered {response.status_code}", where=where)
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if content_type != PEP691_JSON and content_type.lower() not in HTML_TYPES:
                raise InputError(
                    f"answered {content_type or 'no content type'}, not {PEP691_JSON} "
                    "nor HTML (is this a PEP 691 or PEP 503 Simple API?)",
                    where=where,
                )
            body = _read_with_progress(response, on_progress)
            charset = response.charset_encoding
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
        raise InputError(f"not a usable URL ({_scrub(str(err), url)})", where=where) from None
    except httpx.RequestError as err:  # transport, broken content encoding, redirect loop
        raise UnavailableError(f"{where}: {type(err).__name__}: {_scrub(str(err), url)}") from None
    if content_type == PEP691_JSON:
        return json_records(body, where)
    return html_records(body, where, charset)


def _scrub(message: str, url: str) -> str:
    """``message`` without the user name and password of ``url``, should it quote them."""
    return scrub(message.replace(url, redact_url(url)), url_secrets(url))


def _read_with_progress(
    response: httpx.Response, on_progress: Callable[[int, int | None], None] | None
) -> bytes:
    length = response.headers.get("content-length")
    total = int(length) if length and length.isdigit() else None
    chunks: list[bytes] = []
    decoded = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        decoded += len(chunk)
        if on_progress is not None:
            # Bytes on the wire, like Content-Length: a gzip body decodes to more. A body
            # read before streaming (a mock transport's) counts no wire bytes: count it.
            on_progress(response.num_bytes_downloaded or decoded, total)
    return b"".join(chunks)
