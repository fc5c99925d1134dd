"""Templates that turn a name into purge targets: surrogate keys and URLs.

``{name}`` is the normalized name, ``{raw}`` each spelling the name was given in (the 2022
PyPI outage was about verbatim versus normalized URLs: both must be purgeable). Any other
placeholder names a column of a TSV/CSV source (``{version}``): such a template makes one
target per row, under the row's name, once :func:`bind_rows` has given it the rows.
Templates are checked before anything is sent: a malformed one, or one naming a column the
source lacks (read in ``names.sources``), is a usage error.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, TypeAlias
from urllib.parse import quote, urlsplit

from purger.errors import UsageError
from purger.model import TargetKind
from purger.names.nameset import forbidden_character

__all__ = [
    "PLACEHOLDERS",
    "Rows",
    "Template",
    "bind_rows",
    "columns_of",
    "parse_templates",
    "targets_of",
]

#: The placeholders every source has; any other one names a table column.
PLACEHOLDERS: Final = ("name", "raw")

#: Per normalized name, the column cells of each of its rows (only the columns templates use).
Rows: TypeAlias = Mapping[str, tuple[Mapping[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Template:
    """One ``--key-template`` or ``--url-template``."""

    kind: TargetKind
    text: str
    #: The rows of the source, for a template with column placeholders (see bind_rows).
    rows: Rows = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def uses_raw(self) -> bool:
        return "{raw}" in self.text

    @property
    def columns(self) -> tuple[str, ...]:
        """The table columns this template names, in order, without ``name`` and ``raw``."""
        fields = (f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None)
        return tuple(dict.fromkeys(f for f in fields if f not in PLACEHOLDERS))

    def render(self, name: str, raw: str, cells: Mapping[str, str] | None = None) -> str:
        if self.kind is TargetKind.URL:
            # A name or cell is one path segment: never let it add segments or a query.
            name, raw = quote(name, safe=""), quote(raw, safe="")
        text = self.text.replace("{name}", name).replace("{raw}", raw)
        for column, cell in (cells or {}).items():
            if self.kind is TargetKind.URL:
                cell = quote(cell, safe="")
            text = text.replace(f"{{{column}}}", cell)
        return text


def parse_templates(
    key_templates: Sequence[str], url_templates: Sequence[str]
) -> tuple[Template, ...]:
    """Check and return the templates, keys first, in the order given."""
    templates = [Template(TargetKind.KEY, t) for t in key_templates]
    templates += [Template(TargetKind.URL, t) for t in url_templates]
    if not templates:
        raise UsageError("give at least one --key-template or --url-template")
    for template in templates:
        _check(template)
    return tuple(dict.fromkeys(templates))  # the same template twice purges nothing more


def _check(template: Template) -> None:
    flag = f"--{template.kind}-template {template.text!r}"
    try:
        fields = [
            (placeholder, spec, conversion)
            for _, placeholder, spec, conversion in string.Formatter().parse(template.text)
            if placeholder is not None
        ]
    except ValueError as err:
        raise UsageError(f"{flag}: {err} (write {{{{ and }}}} for literal braces)") from None
    for name, spec, conversion in fields:
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise UsageError(
                f"{flag}: unknown placeholder {{{shown}}}; use {{name}}, {{raw}} or a "
                "table column's name"
            )
    if fields and not any(name in PLACEHOLDERS for name, _, _ in fields):
        # Most likely a typo of {name}; a column alone would not say whose target it is.
        raise UsageError(
            f"{flag}: unknown placeholder {{{fields[0][0]}}}: a template needs {{name}} or "
            "{raw}, and column placeholders beside them"
        )
    if not fields:
        raise UsageError(
            f"{flag} has no {{name}} or {{raw}}: every name would purge the same target"
        )
    # Names reach URLs percent-encoded and keys only once checked (names.nameset): what
    # the template itself holds is all that could put such a character in a target.
    if bad := forbidden_character(template.text):
        raise UsageError(
            f"{flag}: {bad} is a control, format or separator character (white space "
            f"included); a {template.kind} cannot contain one"
        )
    if template.kind is TargetKind.URL:
        try:
            parts = urlsplit(template.render("x", "x", dict.fromkeys(template.columns, "x")))
            port_ok = parts.port is None or parts.port > 0
        except ValueError as err:  # a bad IPv6 literal or port
            raise UsageError(f"{flag}: not a usable URL ({err})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise UsageError(f"{flag}: a URL template needs http:// or https:// and a host")


def columns_of(templates: Sequence[Template]) -> tuple[str, ...]:
    """Every table column the templates name, in order: what the source must have."""
    return tuple(dict.fromkeys(c for t in templates for c in t.columns))


def bind_rows(templates: Sequence[Template], rows: Rows) -> tuple[Template, ...]:
    """The templates, those with column placeholders given the source's ``rows``."""
    return tuple(replace(t, rows=rows) if t.columns else t for t in templates)


def targets_of(
    name: str,
    templates: Sequence[Template],
    kind: TargetKind,
    aliases: Mapping[str, tuple[str, ...]],
) -> Iterator[str]:
    """The targets of ``kind`` for one name, in template order, without repeats.

    ``{raw}`` renders once per spelling the name was given in; a name given only in its
    normalized form is its own spelling. A template with column placeholders renders once
    per row of the name (none for a name without rows).
    """
    spellings = aliases.get(name, ())
    seen: set[str] = set()
    for template in templates:
        if template.kind is not kind:
            continue
        raws = (name, *spellings) if template.uses_raw and spellings else (name,)
        rows = template.rows.get(name, ()) if template.columns else (None,)
        for cells in rows:
            for raw in raws:
                target = template.render(name, raw, cells)
                if target not in seen:
                    seen.add(target)
                    yield target
