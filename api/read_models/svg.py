"""Small charts drawn as inline SVG on the server: no JavaScript, they print, and they read out
(each has a title and a description for screen readers; pages put the numbers in a table too).

Two shapes: bars (stacked when there are several series) and a line. Every text is escaped; the
result is a string of SVG markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

# Okabe-Ito colours: told apart with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
_INK, _GRID, _FONT = "#374151", "#d1d5db", 'font-family="Arial, Helvetica, sans-serif" font-size="11"'
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 14, 40


def nice_ticks(maximum: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least `maximum`; `whole`
    steps are at least 1 (counts have no halves)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(step, 1)
    return [step * i for i in range(int(math.ceil(maximum / step - 1e-9)) + 1)]


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


class _Frame:
    """The plot area: value axis with gridlines, category labels along the bottom."""

    def __init__(self, labels: Sequence[str], top: float, width: int, height: int,
                 fmt: Callable[[float], str], whole: bool) -> None:
        self.labels, self.width, self.height = labels, width, height
        self.ticks = nice_ticks(top, whole=whole)
        self.top = self.ticks[-1]
        self.plot_w = width - _LEFT - _RIGHT
        self.plot_h = height - _TOP - _BOTTOM
        self.slot = self.plot_w / max(len(labels), 1)
        self.fmt = fmt

    def y(self, value: float) -> float:
        return _TOP + self.plot_h * (1 - value / self.top)

    def x(self, index: int) -> float:
        return _LEFT + self.slot * (index + 0.5)

    def axes(self) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{_LEFT}" x2="{self.width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>')
            parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{_INK}" {_FONT}>'
                         f'{escape(self.fmt(tick))}</text>')
        every = max(1, math.ceil(len(self.labels) * 34 / self.plot_w))  # keep labels from overlapping
        for i, label in enumerate(self.labels):
            if i % every == 0:
                parts.append(f'<text x="{self.x(i):.1f}" y="{self.height - _BOTTOM + 16}" text-anchor="middle" '
                             f'fill="{_INK}" {_FONT}>{escape(label)}</text>')
        return parts


def _svg(ident: str, title: str, description: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" id="{ident}">'
        f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(description)}</desc>'
        + "".join(body) + "</svg>"
    )


def _legend(names: Sequence[str], width: int, height: int) -> list[str]:
    parts, x = [], _LEFT
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{height - 5}" fill="{_INK}" {_FONT}>{escape(name)}</text>')
        x += 22 + 7 * len(name)
    return parts


def bar_chart(ident: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str,
              description: str, fmt: Callable[[float], str] = _number, top: float | None = None,
              whole: bool = True, legend: bool | None = None, width: int = 560, height: int = 260) -> str:
    """Bars per label; several series stack, bottom to top in the order given. A legend names
    the series when there are several, or when `legend` asks for it."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    frame = _Frame(labels, top or max(totals, default=0), width, height, fmt, whole)
    body = frame.axes()
    bar_w = frame.slot * 0.64
    for i, label in enumerate(labels):
        base = 0.0
        for s, (name, values) in enumerate(series.items()):
            value = values[i]
            if value:
                y0, y1 = frame.y(base), frame.y(base + value)
                tip = f"{label}: {name + ' ' if len(series) > 1 else ''}{fmt(value)}"
                body.append(f'<rect x="{frame.x(i) - bar_w / 2:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                            f'height="{y0 - y1:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                            f'<title>{escape(tip)}</title></rect>')
                base += value
    if legend or (legend is None and len(series) > 1):
        body += _legend(list(series), width, height)
    return _svg(ident, title, description, width, height, body)


def line_chart(ident: str, labels: Sequence[str], values: Sequence[float | None], *, title: str,
               description: str, fmt: Callable[[float], str] = _number, top: float | None = None,
               width: int = 560, height: int = 260) -> str:
    """A line through the values; a gap where a value is None (nothing to measure that month)."""
    frame = _Frame(labels, top or max((v for v in values if v is not None), default=0), width, height, fmt,
                   whole=False)
    body, points = frame.axes(), []
    run: list[str] = []
    for i, value in enumerate([*values, None]):
        if value is None:
            if len(run) > 1:
                body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>')
            run = []
            continue
        run.append(f"{frame.x(i):.1f},{frame.y(value):.1f}")
        points.append(f'<circle cx="{frame.x(i):.1f}" cy="{frame.y(value):.1f}" r="4" fill="{PALETTE[0]}">'
                    f'<title>{escape(f"{labels[i]}: {fmt(value)}")}</title></circle>')
    return _svg(ident, title, description, width, height, body + points)
