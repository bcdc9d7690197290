"""Bar charts as inline SVG, drawn on the server (no JavaScript, no CDN)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

WIDTH = 640
BAR_GAP = 4
HEIGHT = 180
LABEL_H = 28


def bar_chart(title: str, points: list[tuple[str, int]], *, unit: str = "") -> Markup:
    """A vertical bar chart of `points` (label, value); values are minor units or counts."""
    top = max((value for _, value in points), default=0)
    n = max(1, len(points))
    bar_w = max(4, (WIDTH - BAR_GAP * (n + 1)) // n)
    size = f'viewBox="0 0 {WIDTH} {HEIGHT + LABEL_H}" width="{WIDTH}" height="{HEIGHT + LABEL_H}"'
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" {size} xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(points):
        h = 0 if top <= 0 else round((HEIGHT - 14) * value / top)
        x = BAR_GAP + index * (bar_w + BAR_GAP)
        y = HEIGHT - h
        parts.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="#2f6f4f">'
            f"<title>{escape(label)}: {value}{escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2}" y="{HEIGHT + 14}" font-size="10" text-anchor="middle">{escape(label)}</text>'
        )
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
