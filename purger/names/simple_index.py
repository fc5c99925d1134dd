"""A Simple API project list, as the index sent it: PEP 691 JSON or PEP 503 HTML.

Pure: bytes in, :data:`~purger.names.nameset.Record` tuples out. ``sources.py`` downloads
the body and picks the parser by the answer's content type. JSON is asked for first (it is
smaller and says its version plainly); HTML is what many mirrors and private indexes
(devpi, older Artifactory, a static ``simple/`` directory) serve, and is read with the
standard library's ``html.parser``.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Final

from purger.errors import InputError
from purger.names.nameset import Record

__all__ = [
    "ACCEPT",
    "HTML_TYPES",
    "PEP503_HTML",
    "PEP691_JSON",
    "html_records",
    "json_records",
]

PEP691_JSON: Final = "application/vnd.pypi.simple.v1+json"
PEP503_HTML: Final = "application/vnd.pypi.simple.v1+html"
#: The content types an HTML index answers with (PEP 691: plain ``text/html`` is v1 HTML).
HTML_TYPES: Final = frozenset({PEP503_HTML, "text/html"})
#: JSON preferred, either HTML after it (PEP 691's recommended ``Accept``).
ACCEPT: Final = f"{PEP691_JSON}, {PEP503_HTML};q=0.2, text/html;q=0.01"


def json_records(body: bytes, where: str) -> list[Record]:
    """One record per ``projects[].name`` of a PEP 691 (API version 1.x) document."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InputError(f"body is not JSON ({err})", where=where) from None
    if not isinstance(document, dict):
        raise InputError("body is not a PEP 691 index (not a JSON object)", where=where)
    meta = document.get("meta")
    version = str(meta.get("api-version", "")) if isinstance(meta, dict) else ""
    if not version.startswith("1."):
        raise InputError(f"unsupported api-version {version!r} (purger reads 1.x)", where=where)
    projects = document.get("projects")
    if not isinstance(projects, list):
        raise InputError("body has no 'projects' list", where=where)
    records: list[Record] = []
    for index, project in enumerate(projects, start=1):
        name = project.get("name") if isinstance(project, dict) else None
        if not isinstance(name, str):
            raise InputError(f"project {index} has no string 'name'", where=where)
        records.append((name.strip(), None, index))
    return records


def html_records(body: bytes, where: str, charset: str | None = None) -> list[Record]:
    """One record per anchor of a PEP 503 project list: the anchor's text is the project
    name (PEP 503), with its line in the page. A page without anchors is not an index."""
    try:
        text = body.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError) as err:
        raise InputError(f"body is not {charset or 'UTF-8'} text ({err})", where=where) from None
    parser = _ProjectLinks()
    parser.feed(text)
    parser.close()
    major = parser.version.split(".", 1)[0]
    if parser.version and major != "1":
        raise InputError(
            f"unsupported pypi:repository-version {parser.version!r} (purger reads 1.x)",
            where=where,
        )
    if not parser.records:
        raise InputError(
            "an HTML page with no project links (is this a PEP 503 Simple API?)", where=where
        )
    return parser.records


class _ProjectLinks(HTMLParser):
    """Collects the text of every ``<a>`` and the PEP 629 ``pypi:repository-version``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.records: list[Record] = []
        self.version = ""
        self._text: list[str] | None = None
        self._line = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._text, self._line = [], self.getpos()[0]
        elif tag == "meta" and ("name", "pypi:repository-version") in attrs:
            self.version = (dict(attrs).get("content") or "").strip()

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._text is not None:
            self.records.append(("".join(self._text).strip(), None, self._line))
            self._text = None
