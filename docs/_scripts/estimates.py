"""Draw docs/explanation/estimates.svg: the estimates told at check-in on the default day,
with the consultation length learned and with the doctor's fixed ``consult_minutes``.

Run from the repository's root: ``python docs/_scripts/estimates.py [days]``. It simulates
the default day once per seed (0 to days - 1) under each setting, prints the figures and
writes the SVG by hand (no plotting library).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import attrs

import opd_engine._estimate as estimating
from opd_engine.simulation import Scenario, simulate

OUT = Path(__file__).resolve().parent.parent / "explanation" / "estimates.svg"


def figures(days: int, learning: bool) -> dict[str, list[float]]:
    """Per day: coverage (%), median width / median wait, mean error (minutes)."""
    estimating.LEARNING = learning
    found: dict[str, list[float]] = {"coverage": [], "ratio": [], "error": []}
    day = attrs.evolve(Scenario.default_day(), record_estimates=True)
    try:
        for seed in range(days):
            stats = simulate(day, seed).summary().estimates
            assert stats is not None
            assert stats.coverage is not None
            assert stats.median_width is not None
            assert stats.median_wait is not None
            assert stats.mean_error is not None
            found["coverage"].append(100 * stats.coverage)
            found["ratio"].append(stats.median_width / stats.median_wait)
            found["error"].append(stats.mean_error)
    finally:
        estimating.LEARNING = True
    return found


PANELS = (
    ("coverage", "called inside the window (%)", 100.0, 80.0),
    ("ratio", "median width / median wait", 3.0, 1.5),
    ("error", "mean error of the likely time (min)", 40.0, None),
)


def svg(learned: dict[str, list[float]], fixed: dict[str, list[float]], days: int) -> str:
    """Three panels of dots, one per day, fixed left and learned right; a bar at the mean,
    a dashed line at the target."""
    width, height, panel = 720, 300, 240
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="13">Estimates told at check-in, default day, '
        f"{days} seeds (one dot a day)</text>",
    ]
    for i, (key, title, top, target) in enumerate(PANELS):
        left = i * panel + 40
        plot_top, plot_bottom = 50, 250

        def y(
            value: float, top: float = top, low: int = plot_bottom, high: int = plot_top
        ) -> float:
            return low - (low - high) * min(value, top) / top

        parts.append(f'<text x="{left - 30}" y="40">{title}</text>')
        parts.append(
            f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{plot_bottom}" stroke="black"/>'
        )
        parts.extend(
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
            for tick in (0.0, top / 2, top)
        )
        if target is not None:
            parts.append(
                f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + 180}" y2="{y(target):.1f}" '
                f'stroke="#c00" stroke-dasharray="4 3"/>'
            )
        for j, (name, data, colour) in enumerate(
            (("fixed", fixed, "#888"), ("learned", learned, "#1565c0"))
        ):
            centre = left + 50 + 90 * j
            values = data[key]
            for k, value in enumerate(values):
                jitter = (k % 7 - 3) * 3
                parts.append(
                    f'<circle cx="{centre + jitter}" cy="{y(value):.1f}" r="2.5" '
                    f'fill="{colour}" fill-opacity="0.6"/>'
                )
            mean = statistics.fmean(values)
            parts.append(
                f'<line x1="{centre - 22}" y1="{y(mean):.1f}" x2="{centre + 22}" '
                f'y2="{y(mean):.1f}" stroke="black" stroke-width="2"/>'
            )
            parts.append(
                f'<text x="{centre}" y="{plot_bottom + 16}" text-anchor="middle">{name}</text>'
            )
            parts.append(
                f'<text x="{centre}" y="{plot_bottom + 30}" text-anchor="middle">{mean:.2f}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    learned = figures(days, learning=True)
    fixed = figures(days, learning=False)
    for key, title, _, _ in PANELS:
        print(
            f"{title}: fixed {statistics.fmean(fixed[key]):.2f}, "
            f"learned {statistics.fmean(learned[key]):.2f}"
        )
    OUT.write_text(svg(learned, fixed, days), encoding="utf-8")


if __name__ == "__main__":
    main()
