"""One report, two forms: Markdown (``report.md``, read in the repository viewer or an editor) and a
self-contained HTML page (``report.html``: the PNGs are embedded as base64, so the page opens alone in a
browser, also when mailed or attached to an issue).

A report is a list of blocks (:class:`Heading`, :class:`Para`, :class:`Table`, :class:`Images`). Inline
text may use ``**bold**`` and ```code```; everything else is escaped.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    cls: str = ""  # html class, e.g. "verdict bad"


@dataclass
class Table:
    header: list[str]
    rows: list[list]
    align: str = ""  # one letter per column: l or r (default: r for numbers)


@dataclass
class Images:
    files: list[tuple[str, str]] = field(default_factory=list)  # (alt text, file name beside the report)


Block = Heading | Para | Table | Images


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in _aligns(b)) + "|")
            for row in b.rows:
                out.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
            out.append("")
        elif isinstance(b, Images):
            out += [" ".join(f"![{alt}]({name})" for alt, name in b.files), ""]
    return "\n".join(out).rstrip() + "\n"


def _aligns(t: Table) -> str:
    if t.align:
        return t.align
    first = t.rows[0] if t.rows else []
    return "".join("r" if isinstance(v, (int, float)) and not isinstance(v, bool) else "l" for v in first) or "l" * len(t.header)


_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")


def _inline(text: str) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<strong>{_inline(m.group(1))}</strong>" if m.group(1) is not None else f"<code>{html.escape(m.group(2))}</code>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;
margin:24px auto;max-width:1180px;padding:0 16px;color:#1d2330;line-height:1.45}
h1{font-size:1.5em;border-bottom:2px solid #d6dbe4;padding-bottom:.3em}h2{font-size:1.2em;margin-top:1.6em;color:#24406b}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #d6dbe4;padding:3px 9px}
th{background:#eef2f8;text-align:left}td.r{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfd}code{background:#f1f3f6;padding:0 3px;border-radius:3px}
.imgs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.imgs img{border:1px solid #e3e6ec;max-width:100%}
.verdict{font-weight:600;padding:6px 10px;border-radius:4px;background:#e9f6ec;border-left:4px solid #3a9d4f}
.verdict.bad{background:#fdeeee;border-left-color:#c43c3c}
"""


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """The page; images are read from ``folder`` and embedded (a missing one is linked instead)."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            cls = f' class="{html.escape(b.cls)}"' if b.cls else ""
            body.append(f"<p{cls}>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            al = _aligns(b)
            rows = ["<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.header) + "</tr>"]
            for row in b.rows:
                rows.append("<tr>" + "".join(f'<td class="{al[i] if i < len(al) else "l"}">{_inline(_cell(v))}</td>'
                                             for i, v in enumerate(row)) + "</tr>")
            body.append("<table>" + "".join(rows) + "</table>")
        elif isinstance(b, Images):
            imgs = []
            for alt, name in b.files:
                p = Path(folder) / name
                src = ("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")) if p.is_file() else name
                imgs.append(f'<img alt="{html.escape(alt)}" title="{html.escape(name)}" src="{src}">')
            body.append('<div class="imgs">' + "".join(imgs) + "</div>")
    return ("<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
