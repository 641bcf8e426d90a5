"""Small inline SVG charts for the offline report: horizontal bars and a trend line.

Labels may come from scanned servers (builds, organisation names), so every text is escaped
with `for_html`; numbers are formatted by us.
"""

from __future__ import annotations

from collections.abc import Sequence

from exwatch.untrusted import for_html

BAR = "#de2d26"
BAR_BACK = "#fcbba1"
SERIES_COLOURS = ("#3182bd", "#de2d26", "#756bb1", "#31a354")


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(
    items: Sequence[tuple[str, int, int]],
    *,
    title: str,
    value_label: str = "vulnerable",
    total_label: str = "Exchange",
    width: int = 620,
) -> str:
    """Bars per item (label, value, total): `total` light, `value` dark over it."""
    row, left, top = 26, 230, 34
    height = top + row * max(len(items), 1) + 30
    scale_max = max([max(v, t) for _, v, t in items] or [1]) or 1
    plot = width - left - 120  # room for the "value / total" label
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{for_html(title)}" font-family="sans-serif" font-size="13">',
        f'<text x="0" y="18" font-weight="bold" font-size="15">{for_html(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="0" y="{top + 16}" fill="#666">no data</text>')
    for i, (label, value, total) in enumerate(items):
        y = top + i * row
        w_total = plot * total / scale_max
        w_value = plot * value / scale_max
        parts.append(
            f"<g><title>{for_html(label)}: {value:,} {for_html(value_label)} of {total:,}"
            f" {for_html(total_label)}</title>"
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{for_html(_short(label))}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w_total:.1f}" height="18" fill="{BAR_BACK}"/>'
            f'<rect x="{left}" y="{y + 3}" width="{w_value:.1f}" height="18" fill="{BAR}"/>'
            f'<text x="{left + max(w_total, w_value) + 6:.1f}" y="{y + 16}">{value:,} / {total:,}'
            "</text></g>"
        )
    legend_y = height - 10
    parts.append(
        f'<rect x="{left}" y="{legend_y - 11}" width="12" height="12" fill="{BAR}"/>'
        f'<text x="{left + 16}" y="{legend_y}">{for_html(value_label)}</text>'
        f'<rect x="{left + 120}" y="{legend_y - 11}" width="12" height="12" fill="{BAR_BACK}"/>'
        f'<text x="{left + 136}" y="{legend_y}">{for_html(total_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    title: str,
    width: int = 1240,
    height: int = 300,
) -> str:
    """One line per series over the labels (scans, oldest first)."""
    left, right, top, bottom = 60, 50, 34, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([max(values, default=0) for _, values in series] or [0]) or 1
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{for_html(title)}" font-family="sans-serif" font-size="13">',
        f'<text x="0" y="18" font-weight="bold" font-size="15">{for_html(title)}</text>',
    ]
    for tick in range(5):
        value = round(peak * tick / 4)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}"'
            ' stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,}</text>'
        )
    step = max(1, n // 10)
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            anchor = "end" if i == n - 1 and n > 1 else "middle"
            parts.append(
                f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}">'
                f"{for_html(_short(label, 22))}</text>"
            )
    for index, (name, values) in enumerate(series):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{points}"/>'
        )
        for i, v in enumerate(values):
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{colour}">'
                f"<title>{for_html(name)} in {for_html(labels[i])}: {v:,}</title></circle>"
            )
        lx = left + index * 170
        parts.append(
            f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 16}" y="{height - 11}">{for_html(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["bar_chart", "line_chart"]
