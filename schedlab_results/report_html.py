"""The report's HTML shell and small pieces: one self-contained page (inline CSS and SVG, no
script, no font, image or link outside the file)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

__all__ = ("Raw", "badge", "link", "page", "pre", "section", "table")

_CSS = """
body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;color:#222;background:#fff}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1em .6em;border-radius:.6em;color:#fff;font-weight:bold}
.passed,.better{background:#2a7a2a} .failed,.worse{background:#b22222} .error{background:#a66400}
.missing{background:#888} pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}
svg.plot{max-width:100%;height:auto;display:block;margin:.4em 0} .muted{color:#777}
"""


def page(title: str, body: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def badge(status: str, text: str | None = None) -> str:
    return f"<span class='badge {escape(status)}'>{escape(text or status)}</span>"


def section(title: str, *parts: str) -> str:
    return f"<h2>{escape(title)}</h2>\n" + "\n".join(parts)


def pre(lines: Sequence[str]) -> str:
    return "<pre>" + escape("\n".join(lines)) + "</pre>"


def _cell(v: object) -> str:
    if isinstance(v, Raw):
        return f"<td>{v.html}</td>"
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f"<td class='num'>{escape(_num(v))}</td>"
    return f"<td>{escape('' if v is None else str(v))}</td>"


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


class Raw:
    """Cell content that is already HTML (a badge, a link)."""

    def __init__(self, html: str) -> None:
        self.html = html


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def link(href: str, text: str) -> Raw:
    """A link to a file beside the report (a relative path, never a URL)."""
    return Raw(f"<a href='{escape(href, quote=True)}'>{escape(text)}</a>")
