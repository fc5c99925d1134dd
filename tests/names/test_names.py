"""Tests for purger.names.nameset: normalization, validation, weights and merging."""

from __future__ import annotations

import math
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purger.errors import InputError, UsageError
from purger.names.nameset import (
    Normalization,
    Record,
    WeightSpec,
    WeightTransform,
    build_name_set,
    forbidden_character,
    normalize_name,
)

WHERE = "names.tsv"
ZIPF = WeightSpec(column="rank", transform=WeightTransform.ZIPF_RANK)
DOWNLOADS = WeightSpec(column="downloads")

# Letters, digits, the PEP 503 separators, and characters that trip up naive checks:
# "İ" lowers to two code points, the Kelvin sign lowers to ASCII "k", "²" is a digit.
NAME_ALPHABET = "aAbZz09-_.İ\u212aé ²"


def names(*raws: str) -> list[Record]:
    """Records without weight cells, numbered from line 1."""
    return [(raw, None, line) for line, raw in enumerate(raws, start=1)]


def weighted(*rows: tuple[str, str | None]) -> list[Record]:
    """Records with weight cells, numbered from line 2 as under a header row."""
    return [(raw, cell, line) for line, (raw, cell) in enumerate(rows, start=2)]


def reference_pep503(raw: str) -> str | None:
    """PEP 503 normalization of a valid PEP 508 name, spelled out with regular expressions."""
    if not re.fullmatch(r"[A-Z0-9]([A-Z0-9._-]*[A-Z0-9])?", raw, re.IGNORECASE | re.ASCII):
        return None
    return re.sub(r"[-_.]+", "-", raw).lower()


# --- normalize_name -------------------------------------------------------------------------


@settings(max_examples=400, database=None)
@given(st.text(alphabet=NAME_ALPHABET, max_size=12))
def test_pep503_matches_reference(raw: str) -> None:
    """PEP 503 normalization agrees with the regex reference on any text, valid or not."""
    assert normalize_name(raw, Normalization.PEP503) == reference_pep503(raw)


@settings(max_examples=200, database=None)
@given(st.text(alphabet=NAME_ALPHABET, max_size=12))
def test_pep503_is_idempotent(raw: str) -> None:
    """A normalized name normalizes to itself."""
    name = normalize_name(raw, Normalization.PEP503)
    if name is not None:
        assert normalize_name(name, Normalization.PEP503) == name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar", "foo-bar"),
        ("a-_.-b", "a-b"),
        ("x", "x"),
        ("0", "0"),
    ],
)
def test_pep503_folds_case_and_separator_runs(raw: str, expected: str) -> None:
    """PEP 503 lowers case and collapses each run of - _ . into one hyphen."""
    assert normalize_name(raw, Normalization.PEP503) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "-foo", "foo-", "_foo", "foo.", "a b", "café", "\u212a", "İ", "a/b", "a+b", "²"],
)
def test_pep503_rejects_invalid_names(raw: str) -> None:
    """Names that are not valid PEP 508 names normalize to None."""
    assert normalize_name(raw, Normalization.PEP503) is None


@pytest.mark.parametrize(
    "raw", ["Foo_Bar", "café", "a.b/c", "#x", "日本語", "\U0001f600", "\ue000"]
)
def test_none_normalization_keeps_key_as_given(raw: str) -> None:
    """With normalization none, any key without white space or control characters is kept."""
    assert normalize_name(raw, Normalization.NONE) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "a b",
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a\u2028b",
        "a\u202eb",  # right-to-left override (Cf)
        "a\u200bb",  # zero-width space (Cf)
        "a\ufeffb",  # zero-width no-break space (Cf)
        "a\x85b",  # C1 control (Cc)
        "a\x9bb",  # C1 control sequence introducer (Cc)
        "a\xa0b",  # no-break space (Zs)
        "a\u3000b",  # ideographic space (Zs)
        "a\u2029b",  # paragraph separator (Zp)
    ],
)
def test_none_normalization_rejects_space_controls_and_format_characters(raw: str) -> None:
    """With normalization none, empty keys and keys with any Unicode control (Cc), format
    (Cf) or separator (Z*) character are invalid: they split, break or disguise a key."""
    assert normalize_name(raw, Normalization.NONE) is None


@given(st.text(min_size=1, max_size=20))
def test_none_normalization_keeps_exactly_the_keys_without_cc_cf_or_z(raw: str) -> None:
    """The rule, code point by code point, against unicodedata's categories."""
    bad = any(unicodedata.category(c) in ("Cc", "Cf") or unicodedata.category(c)[0] == "Z"
              for c in raw)  # fmt: skip
    assert (normalize_name(raw, Normalization.NONE) is None) == bad
    assert (forbidden_character(raw) is None) == (not bad)


def test_strict_names_with_a_bidi_override_are_refused_naming_the_code_point() -> None:
    """--normalize none --strict: one line naming the file, line and code point."""
    with pytest.raises(InputError, match=r"names.txt:2: .*U\+202E is a control, format"):
        build_name_set(
            [("ok", None, 1), ("evil\u202etxt.exe", None, 2)],
            where="names.txt",
            normalization=Normalization.NONE,
            strict=True,
        )


# --- merging and ordering -----------------------------------------------------------------


def test_default_is_pep503_with_count_weights() -> None:
    """Without options every valid name weighs 1 and names are PEP 503 normalized."""
    result = build_name_set(names("Requests", "numpy"), where=WHERE)
    assert result.normalization is Normalization.PEP503
    assert result.weight.label == "count"
    assert result.names == ("numpy", "requests")
    assert result.weights == (1.0, 1.0)


def test_same_normalized_names_merge_and_add_weights() -> None:
    """Spellings that normalize alike become one name whose weight is their sum."""
    result = build_name_set(
        weighted(("Foo.Bar", "2"), ("foo-bar", "3.5"), ("baz", "1")), where=WHERE, weight=DOWNLOADS
    )
    assert result.names == ("baz", "foo-bar")
    assert result.weights == (1.0, 5.5)
    assert result.records == 3
    assert result.merged == 1
    assert result.total_weight == 6.5


def test_aliases_keep_each_spelling_that_differs_once() -> None:
    """Aliases list the distinct spellings that differ from the normalized name, in order."""
    result = build_name_set(names("Foo_Bar", "foo-bar", "FOO.bar", "Foo_Bar", "plain"), where=WHERE)
    assert dict(result.aliases) == {"foo-bar": ("Foo_Bar", "FOO.bar")}
    assert result.merged == 3


def test_none_normalization_keeps_case_distinct() -> None:
    """With normalization none, names differing only in case stay separate and unaliased."""
    result = build_name_set(
        names("Foo", "foo", "Foo"), where=WHERE, normalization=Normalization.NONE
    )
    assert result.names == ("Foo", "foo")
    assert result.weights == (2.0, 1.0)
    assert result.aliases == {}


def test_names_are_sorted_by_code_point() -> None:
    """Names come out unique and in code-point order (upper case before lower, ASCII first)."""
    raws = ["b", "é", "B", "a", "_x", "Z", "b", "10", "9"]
    result = build_name_set(names(*raws), where=WHERE, normalization=Normalization.NONE)
    assert result.names == tuple(sorted(set(raws), key=lambda s: [ord(c) for c in s]))
    assert result.names[:3] == ("10", "9", "B")


@settings(max_examples=150, database=None)
@given(st.lists(st.text(alphabet=NAME_ALPHABET, max_size=6), max_size=30))
def test_name_set_accounting(raws: list[str]) -> None:
    """Every record is counted once as a name, a merge or an invalid, and weights add up."""
    valid = [raw for raw in raws if reference_pep503(raw) is not None]
    if not valid:
        with pytest.raises(InputError, match="no names to plan"):
            build_name_set(names(*raws), where=WHERE)
        return
    result = build_name_set(names(*raws), where=WHERE)
    assert result.names == tuple(sorted({reference_pep503(raw) for raw in valid}))
    assert all(a < b for a, b in zip(result.names, result.names[1:], strict=False))
    assert result.records == len(raws)
    assert result.invalid == len(raws) - len(valid)
    assert len(result.names) + result.merged + result.invalid == result.records
    assert result.total_weight == len(valid)


# --- invalid names ------------------------------------------------------------------------


def test_invalid_names_are_counted_with_first_examples() -> None:
    """Invalid names are skipped and counted; the first five are kept as examples."""
    bad = ["-a", "b-", "c d", "é", "_e", "f.", "g h"]
    result = build_name_set(names("ok", *bad), where=WHERE)
    assert result.names == ("ok",)
    assert result.invalid == len(bad)
    assert result.invalid_examples == tuple(bad[:5])
    assert result.records == len(bad) + 1


def test_strict_rejects_first_invalid_name_with_its_line() -> None:
    """strict=True turns the first invalid name into an InputError at its line."""
    with pytest.raises(InputError, match=r"^names\.tsv:3: 'bad name' is not a valid pep503 name"):
        build_name_set(names("ok", "fine", "bad name", "-x"), where=WHERE, strict=True)


def test_only_invalid_names_is_an_error_that_counts_them() -> None:
    """When every name is invalid the error says so and how many were skipped."""
    with pytest.raises(
        InputError, match=r"^names\.tsv: no names to plan \(2 invalid names skipped\)"
    ):
        build_name_set(names("-", "a b"), where=WHERE)


def test_no_records_is_an_error() -> None:
    """An empty record stream is an InputError naming the source."""
    with pytest.raises(InputError, match=r"^names\.tsv: no names to plan$"):
        build_name_set([], where=WHERE)


# --- weights ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "value"), [("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("1e3", 1e3)])
def test_numeric_weight_column(cell: str, value: float) -> None:
    """A weight column's cell is read as a float, surrounding spaces allowed."""
    result = build_name_set(weighted(("a", cell)), where=WHERE, weight=DOWNLOADS)
    assert result.weights == (value,)
    assert result.weight.label == "downloads"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("many", r"weight 'many' in column 'downloads' is not a number"),
        ("-1", r"weight '-1' in column 'downloads' must be a finite number >= 0"),
        ("nan", r"weight 'nan' in column 'downloads' must be a finite number >= 0"),
        ("inf", r"weight 'inf' in column 'downloads' must be a finite number >= 0"),
        ("", r"empty weight in column 'downloads'"),
    ],
)
def test_bad_weight_is_an_error_at_its_line(cell: str, message: str) -> None:
    """A weight that is not a finite number >= 0 is an InputError at its file and line."""
    rows = weighted(("a", "1"), ("b", "2"), ("c", cell))
    with pytest.raises(InputError, match=rf"^names\.tsv:4: {message}") as caught:
        build_name_set(rows, where=WHERE, weight=DOWNLOADS)
    assert caught.value.where == WHERE
    assert caught.value.line == 4


def test_zipf_rank_weights_are_reciprocal_ranks() -> None:
    """zipf-rank weighs a name 1/rank and an unranked one 1/(largest rank + 1)."""
    rows = weighted(
        ("first", "1"), ("fourth", "4"), ("second", " 2 "), ("none", ""), ("null", None)
    )
    result = build_name_set(rows, where=WHERE, weight=ZIPF)
    weights = dict(zip(result.names, result.weights, strict=True))
    assert weights == {"first": 1.0, "fourth": 0.25, "second": 0.5, "none": 0.2, "null": 0.2}
    assert result.weight.label == "zipf-rank(rank)"


def test_zipf_rank_duplicates_add_weights() -> None:
    """Under zipf-rank a name listed twice gets both weights, ranked or not."""
    rows = weighted(("Dup", "2"), ("dup", "4"), ("x", "3"), ("x", ""))
    result = build_name_set(rows, where=WHERE, weight=ZIPF)
    weights = dict(zip(result.names, result.weights, strict=True))
    assert weights["dup"] == pytest.approx(1 / 2 + 1 / 4)
    assert weights["x"] == pytest.approx(1 / 3 + 1 / 5)
    assert result.merged == 2


def test_zipf_rank_all_unranked_weigh_one() -> None:
    """With no ranks at all every name weighs 1/(0 + 1)."""
    result = build_name_set(weighted(("a", ""), ("b", None)), where=WHERE, weight=ZIPF)
    assert result.weights == (1.0, 1.0)


@pytest.mark.parametrize("cell", ["0", "-3", "2.5", "first", "nan"])
def test_bad_rank_is_an_error_at_its_line(cell: str) -> None:
    """A rank that is not a whole number >= 1 is an InputError at its file and line."""
    rows = weighted(("a", "1"), ("b", cell))
    pattern = (
        rf"^names\.tsv:3: rank '{re.escape(cell)}' in column 'rank' is not a whole number >= 1"
    )
    with pytest.raises(InputError, match=pattern):
        build_name_set(rows, where=WHERE, weight=ZIPF)


def test_invalid_names_do_not_need_valid_weights() -> None:
    """An invalid name is skipped before its weight cell is read."""
    result = build_name_set(weighted(("ok", "2"), ("-bad", "oops")), where=WHERE, weight=DOWNLOADS)
    assert result.names == ("ok",)
    assert result.invalid == 1


def test_transform_without_column_is_a_usage_error() -> None:
    """A weight transform without a weight column is a UsageError naming both flags."""
    with pytest.raises(UsageError, match="--weight-transform zipf-rank needs --weight-column"):
        WeightSpec(transform=WeightTransform.ZIPF_RANK)


def test_total_weight_is_exact_sum() -> None:
    """total_weight sums the weights without float drift."""
    result = build_name_set(
        weighted(*((f"n{i}", "0.1") for i in range(10))), where=WHERE, weight=DOWNLOADS
    )
    assert result.total_weight == math.fsum([0.1] * 10) == 1.0
