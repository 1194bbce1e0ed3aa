"""A self-contained HTML page: inline CSS, relative links only, so the folder can be moved,
zipped or opened from a file manager and still show everything."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

import pandas as pd

from nmoe_sim.report.figures import Figure

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def escape_text(text: str) -> str:
    return escape(text)


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{escape(text)}</h{level}>"


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def table(frame: pd.DataFrame) -> str:
    """A DataFrame of already formatted cells as an HTML table (cells escaped)."""
    return frame.to_html(index=False, escape=True, border=0, na_rep="")


def figure(fig: Figure) -> str:
    return (
        f'<figure id="{escape(fig.file, quote=True)}">'
        f'<img src="{escape(fig.file, quote=True)}" alt="{escape(fig.title, quote=True)}">'
        f"<figcaption><b>{escape(fig.title)}.</b> {escape(fig.caption)}</figcaption></figure>"
    )


def page(title: str, blocks: Iterable[str]) -> str:
    body = "\n".join(blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="generator" content="nmoe-sim report">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
