"""The report as a self-contained HTML page and as Markdown. Both reference the figures by
relative paths (``figures/*.png``), so the report folder can be copied or served as is;
the page loads nothing from the network and needs no script."""

from __future__ import annotations

import html
import re

from .sections import Section, Table

STYLE = """
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.95em; margin-top: 0.4em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { text-align: left; }
.num { text-align: right; }
code { background: #f3f3f3; padding: 0 0.2em; }
.missing, .status-missing { color: #a33; }
.more { color: #666; font-size: 0.9em; }
.status-partial { color: #a60; }
.status-complete { color: #262; }
"""


def _inline(text: str) -> str:
    """HTML-escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_table(t: Table) -> str:
    num = [' class="num"' if t.numeric(i) else "" for i in range(len(t.columns))]
    head = "".join(f"<th{n}>{html.escape(c)}</th>" for c, n in zip(t.columns, num))
    body = "".join("<tr>" + "".join(f"<td{n}>{html.escape(c)}</td>" for c, n in zip(row, num))
                   + "</tr>" for row in t.rows)
    return (f"<table><caption>{html.escape(t.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _html_section(n: int, s: Section) -> str:
    parts = [f'<section id="{s.key}">', f"<h2>{n}. {html.escape(s.title)}</h2>"]
    if s.figure:
        parts.append(f'<figure><img src="{html.escape(s.figure)}" alt="{html.escape(s.title)}">'
                     f"<figcaption>{_inline(s.caption)}</figcaption></figure>")
    parts += [_html_table(t) for t in s.tables]
    for notes, cls in ((s.missing, "missing"), (s.more, "more")):
        if notes:
            parts.append(f'<p class="{cls}">{_lead(s, notes)}</p><ul class="{cls}">'
                         + "".join(f"<li>{_inline(m)}</li>" for m in notes) + "</ul>")
    return "\n".join(parts + ["</section>"])


def _lead(s: Section, notes: list) -> str:
    """The line above a section's notes."""
    if notes is s.more:
        return "Would add to this section:"
    return "Not available:" if s.figure is None else "Incomplete:"


def _inputs_note(s: Section) -> str:
    """'all found', or how many needed and optional inputs were not found."""
    parts = [f"{len(notes)} {kind} not found"
             for notes, kind in ((s.missing, "needed"), (s.more, "optional")) if notes]
    return ", ".join(parts) or "all found"


def _status_rows(sections: list[Section]) -> list[tuple[int, Section, str]]:
    return [(n, s, _inputs_note(s)) for n, s in enumerate(sections, 1)]


def to_html(title: str, intro: str, sections: list[Section]) -> str:
    """The report page: a status list of the sections, then each section."""
    status = "".join(
        f'<tr><td><a href="#{s.key}">{n}. {html.escape(s.title)}</a></td>'
        f'<td class="status-{s.status}">{s.status}</td><td>{html.escape(note)}</td></tr>'
        for n, s, note in _status_rows(sections))
    body = "\n".join(_html_section(n, s) for n, s in enumerate(sections, 1))
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p>{_inline(intro)}</p>\n"
            f"<table><caption>sections</caption><thead><tr><th>section</th><th>status</th>"
            f"<th>inputs</th></tr></thead><tbody>{status}</tbody></table>\n{body}\n"
            "</body>\n</html>\n")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(t: Table) -> str:
    lines = [f"**{t.title}**", "", "| " + " | ".join(map(_md_cell, t.columns)) + " |",
             "|" + "|".join("---:" if t.numeric(i) else "---"
                            for i in range(len(t.columns))) + "|"]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


def to_markdown(title: str, intro: str, sections: list[Section]) -> str:
    """The report as Markdown with the same sections, figures and tables."""
    out = [f"# {title}", "", intro, "", "| section | status | inputs |", "|---|---|---|"]
    out += [f"| [{n}. {s.title}](#{s.key}) | {s.status} | {note} |"
            for n, s, note in _status_rows(sections)]
    for n, s in enumerate(sections, 1):
        out += ["", f'<a id="{s.key}"></a>', "", f"## {n}. {s.title}", ""]
        if s.figure:
            out += [f"![{s.title}]({s.figure})", "", f"*{s.caption}*", ""]
        out += [part for t in s.tables for part in (_md_table(t), "")]
        for notes in (s.missing, s.more):
            if notes:
                out += [_lead(s, notes), ""] + [f"- {m}" for m in notes] + [""]
    return "\n".join(out).rstrip() + "\n"
