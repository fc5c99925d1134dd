"""Table columns kept for template placeholders: read per row, regrouped by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from purger.errors import InputError, UsageError
from purger.names.nameset import Normalization, build_name_set, rows_by_name
from purger.names.sources import NamesSource, RawRows, read_records


def read(path: Path, columns: tuple[str, ...]) -> tuple[list[str], RawRows]:
    rows: RawRows = {}
    names = [
        name for name, _, _ in read_records(NamesSource(path=str(path), columns=columns), rows=rows)
    ]
    return names, rows


def test_table_columns_are_kept_per_row_under_the_name_as_written(tmp_path: Path) -> None:
    path = tmp_path / "releases.csv"
    path.write_text("name,version,size\nFoo_Bar,1.0,3\nfoo-bar,2.0,4\nbaz, 0.1 ,5\n")
    names, rows = read(path, ("version",))
    assert names == ["Foo_Bar", "foo-bar", "baz"]  # one record per row, as before
    assert rows == {
        "Foo_Bar": [{"version": "1.0"}],
        "foo-bar": [{"version": "2.0"}],
        "baz": [{"version": "0.1"}],
    }


def test_rows_regroup_under_the_normalized_name_once_each() -> None:
    raw: RawRows = {
        "Foo_Bar": [{"version": "1.0"}, {"version": "1.0"}],
        "foo-bar": [{"version": "2.0"}, {"version": "1.0"}],
        "not valid!": [{"version": "9"}],
    }
    assert rows_by_name(raw, Normalization.PEP503) == {
        "foo-bar": ({"version": "1.0"}, {"version": "2.0"})
    }


def test_without_columns_a_table_reads_as_today(tmp_path: Path) -> None:
    path = tmp_path / "names.tsv"
    path.write_text("name\tversion\nfoo\t1\n")
    names, rows = read(path, ())
    assert names == ["foo"]
    assert rows == {}
    assert build_name_set(read_records(NamesSource(path=str(path))), where="x").rows == {}


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("name,size\nfoo,1\n", InputError, "no column 'version' (a template placeholder)"),
        ("name,version\nfoo,\n", InputError, ":2: empty 'version' cell"),
        ("name,version\nfoo\n", InputError, ":2: empty 'version' cell"),
        ("name,version\nfoo,1 2\n", InputError, "U+0020"),
    ],
)
def test_a_missing_column_or_cell_is_a_usage_error(
    tmp_path: Path, text: str, error: type[Exception], fragment: str
) -> None:
    path = tmp_path / "releases.csv"
    path.write_text(text)
    with pytest.raises(error) as caught:
        read(path, ("version",))
    assert fragment in str(caught.value)
    assert isinstance(caught.value, UsageError)  # exit 2


def test_a_names_only_source_has_no_columns(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("foo\n")
    with pytest.raises(UsageError, match=r"unknown placeholder \{version\}: .* has names only"):
        read(path, ("version",))
