"""Small inline-SVG charts for the HTML report (no plotting library, nothing fetched).

Inline SVG in HTML5 needs no namespace URL, so the report stays free of any URL at all.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from hwr.fileio import escape_line_controls

FONT = 'font-family="sans-serif" font-size="11"'


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>{escape(label)}</text>'


def bar_chart(values: Sequence[float], labels: Sequence[str], title: str,
              value_label: Callable[[float], str] = lambda v: f"{v:g}", width: int = 560, height: int = 220,
              x_title: str = "") -> str:
    """Vertical bars with a label under each (every k-th when crowded) and values on hover."""
    left, right, top, bottom = 64, 10, 24, 44  # left: room for the peak label ("1234 lines")
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(values, default=0) or 1
    step = plot_w / max(len(values), 1)
    every = max(1, -(-len(values) // 10))  # at most ~10 axis labels
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{escape(title)}</title>", _text(width / 2, 14, title, extra='font-weight="bold"'),
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
             _text(left - 4, top + 8, value_label(peak), "end"), _text(left - 4, top + plot_h, "0", "end")]
    for i, (value, label) in enumerate(zip(values, labels)):
        bar_h = plot_h * value / peak
        x = left + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{max(step - 2, 1):.1f}" '
                     f'height="{bar_h:.1f}" fill="#4a78b5"><title>{escape(label)}: {escape(value_label(value))}'
                     f"</title></rect>")
        if i % every == 0:
            parts.append(_text(x + step / 2, top + plot_h + 14, label))
    if x_title:
        parts.append(_text(left + plot_w / 2, height - 6, x_title))
    parts.append("</svg>")
    return "".join(parts)


def show_char(c: str) -> str:
    """Characters as a heat map or table shows them: visible space, epsilon for nothing, other
    control characters as \\xNN (an ESC printed raw drives the terminal)."""
    shown = {"": "ε", " ": "␣", "\t": "⇥"}.get(c)
    return shown if shown is not None else escape_line_controls(c)


def heat_map(rows: Sequence[str], cols: Sequence[str], matrix: Sequence[Sequence[int]], title: str,
             cell: int = 20) -> str:
    """Reference chars down, hypothesis chars across; darker = more edits. Empty when no errors."""
    peak = max((v for row in matrix for v in row), default=0)
    if not peak:
        return ""
    left, top = 40, 56
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{escape(title)}</title>", _text(width / 2, 14, title, extra='font-weight="bold"'),
             _text(left + cell * len(cols) / 2, 30, "hypothesis →"),
             _text(12, top + cell * len(rows) / 2, "reference →",
                   extra=f'transform="rotate(-90 12 {top + cell * len(rows) / 2:.1f})"')]
    for j, c in enumerate(cols):
        parts.append(_text(left + j * cell + cell / 2, top - 6, show_char(c)))
    for i, (r, row) in enumerate(zip(rows, matrix)):
        y = top + i * cell
        parts.append(_text(left - 6, y + cell * 0.7, show_char(r), "end"))
        for j, (c, value) in enumerate(zip(cols, row)):
            opacity = 0.08 + 0.92 * value / peak if value else 0.0
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="#b5334a" fill-opacity="{opacity:.2f}" stroke="#eee">'
                         f"<title>{escape(show_char(r))} → {escape(show_char(c))}: {value}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)
