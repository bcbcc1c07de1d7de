"""Render report sections as one self-contained HTML page: inline CSS, PNGs as data URIs.

Every string that comes from a run (class names, config values, the summary table) is escaped
with :func:`html.escape`, so a class named ``<script>`` shows as text. The page loads nothing
from the network and runs no JavaScript.
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

from cnnkit.report.sections import Picture, Section, Table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .2rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; font-size: .8rem; }
img { max-width: 100%; display: block; margin: .5rem 0; }
.note { color: #666; font-style: italic; }
"""


def _cell(value: Any) -> str:
    """One table cell: numbers right-aligned (floats with 4 decimals), all text escaped."""
    if isinstance(value, float):
        shown = "nan" if math.isnan(value) else f"{value:.4f}"
        return f'<td class="num">{shown}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>\n" for row in table.rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _picture(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(picture.alt)}">'


def render_section(section: Section) -> str:
    """The ``<section>`` element of one report section."""
    parts = [f'<section id="{html.escape(section.key)}">',
             f"<h2>{html.escape(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    if section.text:
        tag = "pre" if "\n" in section.text else "p"
        parts.append(f"<{tag}>{html.escape(section.text)}</{tag}>")
    if section.table is not None:
        parts.append(_table(section.table))
    parts.extend(_picture(p) for p in section.pictures)
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, sections: Sequence[Section]) -> str:
    """One HTML page: a title, links to every section, then the sections in order.

    Args:
        title: the page's heading (escaped).
        sections: from :func:`cnnkit.report.sections.collect_sections`.

    Example:
        >>> page = render_page("<b>run</b>", [Section("config", "Configuration", note="empty")])
        >>> "&lt;b&gt;run&lt;/b&gt;" in page and "<b>" not in page
        True
    """
    links = " ".join(f'<a href="#{html.escape(s.key)}">{html.escape(s.title)}</a>'
                     for s in sections)
    body = "\n".join(render_section(s) for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<nav>{links}</nav>\n{body}\n</body>\n</html>\n")
