"""Templates that turn a name into purge targets: surrogate keys and URLs.

``{name}`` is the normalized name, ``{raw}`` each spelling the name was given in (the 2022
PyPI outage was about verbatim versus normalized URLs: both must be purgeable). Templates
are checked before anything is sent: an unknown placeholder is a usage error.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from purger.errors import UsageError
from purger.model import TargetKind
from purger.names.nameset import forbidden_character

__all__ = ["PLACEHOLDERS", "Template", "parse_templates", "targets_of"]

PLACEHOLDERS: Final = ("name", "raw")


@dataclass(frozen=True, slots=True)
class Template:
    """One ``--key-template`` or ``--url-template``."""

    kind: TargetKind
    text: str

    @property
    def uses_raw(self) -> bool:
        return "{raw}" in self.text

    def render(self, name: str, raw: str) -> str:
        if self.kind is TargetKind.URL:
            # A name is one path segment: never let it add segments or a query.
            name, raw = quote(name, safe=""), quote(raw, safe="")
        return self.text.replace("{name}", name).replace("{raw}", raw)


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
            (field, spec, conversion)
            for _, field, spec, conversion in string.Formatter().parse(template.text)
            if field is not None
        ]
    except ValueError as err:
        raise UsageError(f"{flag}: {err} (write {{{{ and }}}} for literal braces)") from None
    for field, spec, conversion in fields:
        if field not in PLACEHOLDERS or spec or conversion:
            raise UsageError(f"{flag}: unknown placeholder {{{field}}}; use {{name}} or {{raw}}")
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
            parts = urlsplit(template.text.replace("{name}", "x").replace("{raw}", "x"))
            port_ok = parts.port is None or parts.port > 0
        except ValueError as err:  # a bad IPv6 literal or port
            raise UsageError(f"{flag}: not a usable URL ({err})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise UsageError(f"{flag}: a URL template needs http:// or https:// and a host")


def targets_of(
    name: str,
    templates: Sequence[Template],
    kind: TargetKind,
    aliases: Mapping[str, tuple[str, ...]],
) -> Iterator[str]:
    """The targets of ``kind`` for one name, in template order, without repeats.

    ``{raw}`` renders once per spelling the name was given in; a name given only in its
    normalized form is its own spelling.
    """
    spellings = aliases.get(name, ())
    seen: set[str] = set()
    for template in templates:
        if template.kind is not kind:
            continue
        raws = (name, *spellings) if template.uses_raw and spellings else (name,)
        for raw in raws:
            target = template.render(name, raw)
            if target not in seen:
                seen.add(target)
                yield target
