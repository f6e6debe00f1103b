"""Hand-written SVG charts for the leaderboard page: no plotting library, no script, no network.

Every text that reaches the SVG goes through ``html.escape``: labels come from result entries,
i.e. from whoever submitted them.

- ``profile_chart``: one line per series over the dimensions (mean, with a +-sd whisker), and the
  target's profile in black.
- ``convergence_chart``: best fitness against evaluations, a step line per seed, one colour per
  series, and dashed horizontal reference lines (e.g. the baselines).
"""

from __future__ import annotations

from typing import Mapping

import math
from html import escape

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies); the target is black.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999999", "#8C6D1F")
# Further colours for aligner setups once the palette is used up (Paul Tol's muted scheme).
MORE_COLOURS = ("#332288", "#117733", "#44AA99", "#88CCEE", "#DDCC77", "#CC6677", "#AA4499", "#882255")
WIDTH, HEIGHT = 680, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 190, 34, 44


# Each built-in aligner keeps one colour in every chart, chosen so that the pairs compared most
# (de/naive, cmaes/random, de/cmaes, icl/icl-profile) differ in hue and lightness.
def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def aligner_colours(series: list[tuple[str, str]], declared: Mapping[str, str]) -> dict[str, str]:
    """{label: colour} for (label, aligner name) pairs: an aligner's own colour (``declared``:
    aligner name -> the colour it declares, ``Aligner.colour``) for its first label (in sorted
    order), the palette's unused colours for further setups of it and for aligners without one."""
    out, used = {}, set()
    for label, name in sorted(set(series)):
        if name in declared and declared[name] not in used:
            out[label] = declared[name]
            used.add(out[label])
    spare = [c for c in dict.fromkeys(PALETTE + tuple(declared.values()) + MORE_COLOURS) if c not in used]
    for label, _ in sorted(set(series)):
        if label not in out:
            out[label] = spare.pop(0) if spare else colour(len(out))
    return out


def _num(x: float) -> str:
    return f"{x:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(n, 1)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    start = math.floor(lo / step) * step
    ticks, k = [], 0
    while start + k * step <= hi + step * 1e-9:
        ticks.append(round(start + k * step, 10))
        k += 1
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


class _Frame:
    """Maps data to pixels inside the plot area and draws axes, grid and legend."""

    def __init__(self, xlo, xhi, ylo, yhi):
        self.xlo, self.xhi = xlo, (xhi if xhi > xlo else xlo + 1)
        self.yticks = nice_ticks(ylo, yhi)
        self.ylo, self.yhi = self.yticks[0], self.yticks[-1]
        if self.yhi <= self.ylo:
            self.yhi = self.ylo + 1
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        return LEFT + (v - self.xlo) / (self.xhi - self.xlo) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - (v - self.ylo) / (self.yhi - self.ylo) * (HEIGHT - TOP - BOTTOM)

    def axes(self, title: str, xlabel: str, ylabel: str, xticks: list[tuple[float, str]]) -> None:
        p = self.parts
        p.append(f'<text x="{LEFT}" y="20" class="title">{escape(title)}</text>')
        for t in self.yticks:
            y = _num(self.y(t))
            p.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" class="grid"/>')
            p.append(f'<text x="{LEFT - 6}" y="{y}" class="ytick">{t:g}</text>')
        for v, label in xticks:
            p.append(f'<text x="{_num(self.x(v))}" y="{HEIGHT - BOTTOM + 16}" class="xtick">{escape(label)}</text>')
        p.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" class="axis"/>')
        p.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" class="xlabel">{escape(xlabel)}</text>')
        p.append(f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
                 f'class="ylabel">{escape(ylabel)}</text>')

    def legend(self, items: list[tuple[str, str, str]]) -> None:
        """items: (label, colour, dash pattern or "")."""
        x0 = WIDTH - RIGHT + 14
        for k, (label, col, dash) in enumerate(items):
            y = TOP + 8 + 18 * k
            style = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(f'<line x1="{x0}" x2="{x0 + 22}" y1="{y}" y2="{y}" stroke="{col}" '
                              f'stroke-width="2.5"{style}/>')
            self.parts.append(f'<text x="{x0 + 28}" y="{y + 4}" class="legend">{escape(label[:28])}</text>')

    def svg(self, label: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
                f'height="{HEIGHT}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
                + "".join(self.parts) + "</svg>")


def profile_chart(title: str, dims: list[str], series: list[dict], target: dict) -> str:
    """series: [{"label", "colour", "values": {dim: mean}, "spread": {dim: sd or None}}];
    target: {"label", "values": {dim: score}}."""
    values = [v for s in series for d in dims for v in (s["values"].get(d),) if v is not None]
    values += [s["values"][d] + sign * (s["spread"].get(d) or 0) for s in series for d in dims
               if s["values"].get(d) is not None for sign in (-1, 1)]
    values += [target["values"][d] for d in dims if d in target["values"]]
    f = _Frame(-0.5, len(dims) - 0.5, min(values, default=0.0), max(values, default=100.0))
    f.axes(title, "dimension", "index", [(k, d.upper()) for k, d in enumerate(dims)])
    for s in series:
        pts = [(f.x(k), f.y(s["values"][d])) for k, d in enumerate(dims) if s["values"].get(d) is not None]
        f.parts.append(f'<polyline points="{" ".join(f"{_num(a)},{_num(b)}" for a, b in pts)}" fill="none" '
                       f'stroke="{s["colour"]}" stroke-width="2"/>')
        for k, d in enumerate(dims):
            v, sd = s["values"].get(d), s["spread"].get(d)
            if v is None:
                continue
            x = _num(f.x(k))
            if sd:
                f.parts.append(f'<line x1="{x}" x2="{x}" y1="{_num(f.y(v - sd))}" y2="{_num(f.y(v + sd))}" '
                               f'stroke="{s["colour"]}" stroke-width="1.5"/>')
            f.parts.append(f'<circle cx="{x}" cy="{_num(f.y(v))}" r="3.5" fill="{s["colour"]}">'
                           f'<title>{escape(s["label"])}: {d.upper()} {v:.1f}</title></circle>')
    tpts = [(f.x(k), f.y(target["values"][d])) for k, d in enumerate(dims) if d in target["values"]]
    f.parts.append(f'<polyline points="{" ".join(f"{_num(a)},{_num(b)}" for a, b in tpts)}" fill="none" '
                   'stroke="#000" stroke-width="2.5" stroke-dasharray="6 3"/>')
    for (x, y), d in zip(tpts, [d for d in dims if d in target["values"]]):
        f.parts.append(f'<rect x="{_num(x - 4)}" y="{_num(y - 4)}" width="8" height="8" fill="#000">'
                       f'<title>{escape(target["label"])}: {d.upper()} {target["values"][d]:g}</title></rect>')
    f.legend([(target["label"], "#000", "6 3")] + [(s["label"], s["colour"], "") for s in series])
    return f.svg(title)


def convergence_chart(title: str, series: list[dict], references: list[dict], ylabel: str) -> str:
    """series: [{"label", "colour", "curves": [[[evaluations, best], ...], ...], "final": [evaluations,
    fitness] or None}] (one curve per seed; ``final``: the result re-scored, drawn as a hollow
    marker); references: [{"label", "colour", "value"}] drawn as dashed horizontal lines."""
    points = [p for s in series for c in s["curves"] for p in c] + [s["final"] for s in series if s.get("final")]
    ys = [p[1] for p in points] + [r["value"] for r in references]
    xhi = max((p[0] for p in points), default=1)
    f = _Frame(0, xhi, min(ys, default=0.0), max(ys, default=1.0))
    f.axes(title, "candidate evaluations", ylabel, [(t, f"{t:g}") for t in nice_ticks(0, xhi) if t <= xhi])
    for s in series:
        for curve in s["curves"]:
            if not curve:
                continue
            d = [f"M{_num(f.x(curve[0][0]))},{_num(f.y(curve[0][1]))}"]
            for e, b in curve[1:]:  # the best so far holds until the generation that improves it
                d.append(f"H{_num(f.x(e))} V{_num(f.y(b))}")
            f.parts.append(f'<path d="{" ".join(d)}" fill="none" stroke="{s["colour"]}" stroke-width="2" '
                           f'opacity="0.85"><title>{escape(s["label"])}: best {curve[-1][1]:.2f} after '
                           f'{curve[-1][0]} evaluations</title></path>')
        if s.get("final"):
            e, v = s["final"]
            f.parts.append(f'<circle cx="{_num(f.x(e))}" cy="{_num(f.y(v))}" r="5" fill="#fff" stroke="{s["colour"]}" '
                           f'stroke-width="2"><title>{escape(s["label"])}: final {v:.2f}</title></circle>')
    for r in references:
        y = _num(f.y(r["value"]))
        f.parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="{r["colour"]}" '
                       f'stroke-width="1.5" stroke-dasharray="4 4"><title>{escape(r["label"])}: '
                       f'{r["value"]:.2f}</title></line>')
    f.legend([(s["label"], s["colour"], "") for s in series] + [(r["label"], r["colour"], "4 4") for r in references])
    return f.svg(title)
