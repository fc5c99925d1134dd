"""Names: normalization, validation, weights, and merging into a sorted :class:`NameSet`.

Pure: this module reads nothing and sends nothing. ``sources.py`` turns files, stdin and
URLs into :data:`Record` tuples; this module turns records into the set the planner cuts.
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Final, TypeAlias

from purger.errors import InputError, UsageError

__all__ = [
    "NameSet",
    "Normalization",
    "Record",
    "WeightSpec",
    "WeightTransform",
    "build_name_set",
    "forbidden_character",
    "normalize_name",
    "rows_by_name",
]

#: One input row: the name as written, the weight cell (``None`` when there is no weight
#: column) and its 1-based line number, for error messages.
Record: TypeAlias = tuple[str, str | None, int]

_INVALID_EXAMPLES: Final = 5
#: Stands for "no rank" among zipf-rank weights until the largest rank is known.
_UNRANKED: Final = -1.0


class Normalization(StrEnum):
    """How raw names become keys: PEP 503 for PyPI projects, ``none`` for other key spaces."""

    PEP503 = "pep503"
    NONE = "none"


class WeightTransform(StrEnum):
    """How a weight column's cells become weights."""

    NONE = "none"
    #: The cell is a popularity rank (1 = most popular): weight 1/rank. Unranked names
    #: weigh 1/(largest rank + 1), a little less than the least popular ranked name.
    ZIPF_RANK = "zipf-rank"


_PEP503_SEPARATORS: Final = re.compile(r"[-_.]+")


def forbidden_character(text: str) -> str | None:
    """The first control (Cc), format (Cf) or separator (Z*) character in ``text``, as
    ``U+XXXX``, or ``None``. Keys and URLs travel in headers and request lines: white space
    splits them, controls break them, and format characters (U+202E, U+200B) make a key
    look like another in every log and terminal.
    """
    if text.isprintable() and " " not in text:  # C speed: almost every name
        return None
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf") or category[0] == "Z":
            return f"U+{ord(char):04X}"
    return None  # only private-use or unassigned code points: not refused


def normalize_name(raw: str, normalization: Normalization) -> str | None:
    """Return the normalized form of ``raw``, or ``None`` when it is not a valid name.

    PEP 503 names must be valid PEP 508 names: ASCII letters and digits, with ``-``, ``_``
    and ``.`` inside. String methods rather than a regular expression: this runs once per
    name (886,323 times for PyPI) and is three times faster this way.
    """
    if normalization is Normalization.NONE:
        return raw if raw and forbidden_character(raw) is None else None
    # Before lower(): some non-ASCII letters fold to ASCII (the Kelvin sign to "k").
    if not raw.isascii():
        return None
    name = raw.lower()
    if name.isalnum():  # most names: nothing to fold
        return name
    if "_" in name or "." in name or "--" in name:
        name = _PEP503_SEPARATORS.sub("-", name)
    if name.replace("-", "").isalnum() and name[0] != "-" and name[-1] != "-":
        return name
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightSpec:
    """Where weights come from: every name weighs 1, or a column, maybe transformed."""

    column: str | None = None
    transform: WeightTransform = WeightTransform.NONE

    def __post_init__(self) -> None:
        if self.transform is not WeightTransform.NONE and self.column is None:
            raise UsageError(f"--weight-transform {self.transform} needs --weight-column")

    @property
    def label(self) -> str:
        """The short description stored in a plan: ``count``, ``downloads``, ``zipf-rank(rank)``."""
        if self.column is None:
            return "count"
        if self.transform is WeightTransform.NONE:
            return self.column
        return f"{self.transform}({self.column})"


@dataclass(frozen=True, slots=True, kw_only=True)
class NameSet:
    """Unique normalized names in code-point order, with their weights.

    ``records`` rows were read; ``merged`` of them named a name already seen (after
    normalization) and had their weight added to it; ``invalid`` were skipped.
    """

    names: tuple[str, ...]
    weights: tuple[float, ...]
    normalization: Normalization
    weight: WeightSpec
    records: int
    merged: int
    invalid: int
    invalid_examples: tuple[str, ...] = ()
    #: Spellings as given that differ from their normalized name (``{raw}`` templates).
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per name, the table cells of each of its rows that templates name (``{version}``).
    rows: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)

    @property
    def total_weight(self) -> float:
        return math.fsum(self.weights)


def build_name_set(
    records: Iterable[Record],
    *,
    where: str,
    normalization: Normalization = Normalization.PEP503,
    weight: WeightSpec | None = None,
    strict: bool = False,
) -> NameSet:
    """Normalize, validate, weigh and merge ``records`` read from ``where``.

    Raises :class:`InputError` for a weight that is not a number, for an invalid name when
    ``strict``, and when no valid name is left.
    """
    spec = weight if weight is not None else WeightSpec()
    is_zipf = spec.transform is WeightTransform.ZIPF_RANK
    column = spec.column
    # Parallel lists, merged by sorting afterwards: sorting is cheaper than hashing 886,323
    # names into a dict, and nearly free when the input is already sorted (PyPI's list is).
    found: list[str] = []
    values: list[float] = []
    aliases: dict[str, list[str]] = {}
    max_rank = 0
    records_read = invalid = 0
    examples: list[str] = []
    add_name, add_value = found.append, values.append  # bound once: the loop runs per name

    for raw, cell, line in records:
        records_read += 1
        name = normalize_name(raw, normalization)
        if name is None:
            if strict:
                bad = forbidden_character(raw)
                why = f": {bad} is a control, format or separator character" if bad else ""
                raise InputError(
                    f"{raw!r} is not a valid {normalization} name{why}", where=where, line=line
                )
            invalid += 1
            if len(examples) < _INVALID_EXAMPLES:
                examples.append(raw)
            continue
        add_name(name)
        if column is None:
            pass
        elif is_zipf:
            rank = _parse_rank(cell, column, where, line) if cell else None
            if rank is None:
                add_value(_UNRANKED)  # its weight is known only after the last row
            else:
                max_rank = max(max_rank, rank)
                add_value(1.0 / rank)
        else:
            add_value(_parse_weight(cell, column, where, line))
        if raw != name:
            spellings = aliases.setdefault(name, [])
            if raw not in spellings:  # each spelling once, however often it is repeated
                spellings.append(raw)

    if not found:
        detail = f" ({invalid} invalid names skipped)" if invalid else ""
        raise InputError(f"no names to plan{detail}", where=where)
    if column is None:
        names, weights = _merge_counted(found)
    else:
        unranked_weight = 1.0 / (max_rank + 1)
        names, weights = _merge_weighted(found, values, unranked_weight)
    return NameSet(
        names=tuple(names),
        weights=tuple(weights),
        normalization=normalization,
        weight=spec,
        records=records_read,
        merged=len(found) - len(names),
        invalid=invalid,
        invalid_examples=tuple(examples),
        aliases={name: tuple(spellings) for name, spellings in aliases.items()},
    )


def rows_by_name(
    raw_rows: Mapping[str, Iterable[Mapping[str, str]]], normalization: Normalization
) -> dict[str, tuple[Mapping[str, str], ...]]:
    """Rows keyed by name as written, regrouped under their normalized name (spelling by
    spelling, in the order read), each row once; rows of invalid names go with their names."""
    grouped: dict[str, dict[tuple[tuple[str, str], ...], Mapping[str, str]]] = {}
    for raw, rows in raw_rows.items():
        name = normalize_name(raw, normalization)
        if name is not None:
            into = grouped.setdefault(name, {})
            for row in rows:
                into.setdefault(tuple(row.items()), row)
    return {name: tuple(rows.values()) for name, rows in grouped.items()}


def _is_sorted_and_unique(found: list[str]) -> bool:
    """True for input that is already in order with no repeats (a C-speed pass)."""
    return all(map(operator.lt, found, islice(found, 1, None)))


def _merge_counted(found: list[str]) -> tuple[list[str], list[float]]:
    """Sort names and fold repeats into one name weighing how often it was seen."""
    if _is_sorted_and_unique(found):
        return found, [1.0] * len(found)
    found.sort()
    names: list[str] = []
    weights: list[float] = []
    previous = None
    for name in found:
        if name == previous:
            weights[-1] += 1.0
        else:
            names.append(name)
            weights.append(1.0)
            previous = name
    return names, weights


def _merge_weighted(
    found: list[str], values: list[float], unranked_weight: float
) -> tuple[list[str], list[float]]:
    """Sort names with their weights and add up the weights of repeats."""
    if _is_sorted_and_unique(found):
        return found, [unranked_weight if v == _UNRANKED else v for v in values]
    names: list[str] = []
    weights: list[float] = []
    previous = None
    for i in sorted(range(len(found)), key=found.__getitem__):
        name, value = found[i], values[i]
        if value == _UNRANKED:
            value = unranked_weight
        if name == previous:
            weights[-1] += value
        else:
            names.append(name)
            weights.append(value)
            previous = name
    return names, weights


def _parse_weight(cell: str | None, column: str, where: str, line: int) -> float:
    text = (cell or "").strip()
    if not text:
        raise InputError(
            f"empty weight in column {column!r} (a rank column wants --weight-transform zipf-rank)",
            where=where,
            line=line,
        )
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"weight {text!r} in column {column!r} is not a number", where=where, line=line
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"weight {text!r} in column {column!r} must be a finite number >= 0",
            where=where,
            line=line,
        )
    return value


def _parse_rank(cell: str | None, column: str, where: str, line: int) -> int | None:
    text = (cell or "").strip()
    if not text:
        return None
    try:
        rank = int(text)
    except ValueError:
        rank = 0
    if rank < 1:
        raise InputError(
            f"rank {text!r} in column {column!r} is not a whole number >= 1", where=where, line=line
        )
    return rank
