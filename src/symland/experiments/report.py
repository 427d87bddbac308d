"""Self-contained HTML reports: figures embedded as base64 PNG, tables as HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path


def embed_png(path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(title: str, sections) -> str:
    """One self-contained HTML page from `sections`, a list of (heading, html_fragment)."""
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;"
             "text-align:right}th{background:#eee}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, fragment in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{fragment}")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(path, title: str, sections) -> Path:
    """Write `report_html(title, sections)` to `path` through a temporary name; returns the path."""
    from .._io import atomic_write_text

    return atomic_write_text(Path(path), report_html(title, sections))
