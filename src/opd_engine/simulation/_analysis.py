"""Scenarios side by side: comparisons over common random numbers, and sweeps over a grid."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, final

import attrs

from opd_engine._display import table
from opd_engine._frozen import FrozenMap
from opd_engine.errors import InvalidArgumentError

from ._engine import Job, Mapper, Progress, _check_runner, _seeds, run_jobs
from ._records import DifferenceRow, TidyRow, split_figure
from ._results import Estimate, Replication, estimate
from ._scenario import Scenario

__all__ = ["Comparison", "Sweep", "compare", "sweep"]


def _paired(
    base: Sequence[Mapping[str, float]], other: Sequence[Mapping[str, float]]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per figure, the two scenarios' values over the seeds where both have it."""
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    for a, b in zip(base, other, strict=True):
        for figure, value in a.items():
            if figure in b:
                left, right = pairs.setdefault(figure, ([], []))
                left.append(value)
                right.append(b[figure])
    return pairs


@final
@attrs.frozen(kw_only=True)
class Comparison:
    """Scenarios run over the same seeds, each against a baseline, seed by seed.

    A seed gives every scenario the same random draws (each process of the day has its own
    stream: the same arrivals, the same consultation lengths, the same no-shows), so the
    difference a change makes is measured on the same days: common random numbers. The
    paired differences then vary far less than two independent runs would, and their 95%
    intervals are correspondingly tighter. ``replications`` holds every scenario's
    :class:`Replication`, the baseline's included, in the order given.
    """

    baseline: str
    replications: Mapping[str, Replication]

    @property
    def names(self) -> tuple[str, ...]:
        """The scenarios' names, the baseline's included, in the order given. O(s)."""
        return tuple(self.replications)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds every scenario ran, in order. O(n)."""
        return self.replications[self.baseline].seeds

    def differences(self, scenario: str) -> dict[str, Estimate]:
        """Every figure's paired difference, ``scenario`` minus the baseline, as an
        :class:`Estimate` (mean of the differences and its 95% interval, Student's t),
        over the seeds where both scenarios have the figure (a wait needs a patient seen).
        O(figures * n)."""
        if scenario not in self.replications:
            raise InvalidArgumentError(
                f"scenario must be one of {list(self.replications)}, got scenario={scenario!r}"
            )
        pairs = _paired(self._figures(self.baseline), self._figures(scenario))
        return {
            figure: estimate([b - a for a, b in zip(left, right, strict=True)])
            for figure, (left, right) in pairs.items()
        }

    def difference(self, scenario: str, figure: str) -> Estimate:
        """One figure's paired difference (:meth:`differences`), e.g.
        ``difference("strict", "priority.STANDARD.mean_wait")``. O(figures * n)."""
        differences = self.differences(scenario)
        if figure not in differences:
            raise InvalidArgumentError(
                f"figure {figure!r} is not in both {scenario!r} and {self.baseline!r} for any "
                f"seed; figures are the keys of Summary.figures()"
            )
        return differences[figure]

    def rows(self) -> list[DifferenceRow]:
        """The comparison as a tidy table, one :class:`DifferenceRow` per scenario other
        than the baseline and per figure: ``pandas.DataFrame(comparison.rows())``. Figures
        in the order of :meth:`Summary.figures`. O(s * figures * n)."""
        rows: list[DifferenceRow] = []
        base = self._figures(self.baseline)
        for name in self.names:
            if name == self.baseline:
                continue
            for figure, (left, right) in _paired(base, self._figures(name)).items():
                by, group, metric = split_figure(figure)
                diff = estimate([b - a for a, b in zip(left, right, strict=True)])
                rows.append(
                    DifferenceRow(
                        scenario=name,
                        baseline=self.baseline,
                        figure=figure,
                        by=by,
                        group=group,
                        metric=metric,
                        baseline_mean=math.fsum(left) / len(left),
                        scenario_mean=math.fsum(right) / len(right),
                        difference=diff.mean,
                        low=diff.low,
                        high=diff.high,
                        half_width=diff.high - diff.mean,
                        n=diff.n,
                    )
                )
        return rows

    def tidy(self) -> list[TidyRow]:
        """Every scenario's figures, seed by seed, in long form, ``scenario`` being its
        name: for plots of the values themselves. O(s * figures * n)."""
        return [row for name, rep in self.replications.items() for row in rep.tidy(name)]

    def _figures(self, name: str) -> list[dict[str, float]]:
        return [summary.figures() for summary in self.replications[name].summaries]

    def _repr_html_(self) -> str:
        rows = [
            (
                r["scenario"],
                f"{r['by']} {r['group']}",
                r["baseline_mean"],
                r["scenario_mean"],
                r["difference"],
                r["low"],
                r["high"],
            )
            for r in self.rows()
            if r["metric"] == "mean_wait" and r["by"] == "priority"
        ]
        return table(
            f"Mean waits against {self.baseline!r}, paired over {len(self.seeds)} seeds "
            f"(minutes, 95% interval of the difference)",
            ("scenario", "group", "baseline mean", "scenario mean", "difference", "low", "high"),
            rows,
        )

    def __repr__(self) -> str:
        others = ", ".join(repr(n) for n in self.names if n != self.baseline)
        return f"<Comparison {others} against {self.baseline!r} over {len(self.seeds)} seeds>"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidArgumentError(
            f"scenario names must be non-empty strings without surrounding whitespace, got {name!r}"
        )
    return name


def _run(
    scenarios: Mapping[str, Scenario],
    seeds: Sequence[int],
    map: Mapper,
    progress: Progress | None,
) -> dict[str, Replication]:
    """Every scenario over every seed in one ``map``, so that an executor spreads them all."""
    jobs: list[Job] = [(scenario, seed) for scenario in scenarios.values() for seed in seeds]
    summaries = run_jobs(jobs, map, progress)
    n = len(seeds)
    return {
        name: Replication(scenario=scenario, summaries=tuple(summaries[i * n : (i + 1) * n]))
        for i, (name, scenario) in enumerate(scenarios.items())
    }


def compare(
    scenarios: Mapping[str, Scenario],
    seeds: Iterable[int],
    *,
    baseline: str | None = None,
    map: Mapper = map,
    progress: Progress | None = None,
) -> Comparison:
    """Run two or more named scenarios over the same seeds and compare each with the
    baseline (the first, unless ``baseline`` names another), figure by figure::

        comparison = compare({"aging": day, "strict": strict_day}, seeds=range(1, 21))
        pandas.DataFrame(comparison.rows())

    Policies are compared by giving each scenario its own
    (:meth:`Scenario.with_policies`). Every day of every scenario goes through ``map`` in
    one call (any ``map``-like executor, as for :func:`replicate`), and ``progress(done,
    total)``, if given, is called after each comes back. O(scenarios * seeds * day).
    """
    if not isinstance(scenarios, Mapping):
        raise InvalidArgumentError(
            f"scenarios must be a mapping of name to Scenario, got scenarios={scenarios!r}"
        )
    named = {_check_name(name): scenario for name, scenario in scenarios.items()}
    if len(named) < 2:
        raise InvalidArgumentError(
            f"scenarios must hold at least two scenarios to compare, got {list(named)}"
        )
    for name, scenario in named.items():
        if not isinstance(scenario, Scenario):
            raise InvalidArgumentError(f"scenarios[{name!r}] must be a Scenario, got {scenario!r}")
    base = next(iter(named)) if baseline is None else baseline
    if base not in named:
        raise InvalidArgumentError(
            f"baseline must be one of {list(named)}, got baseline={baseline!r}"
        )
    checked = _seeds(named[base], seeds)
    _check_runner(map, progress)
    return Comparison(baseline=base, replications=FrozenMap(_run(named, checked, map, progress)))


# The columns of a sweep's rows, which an axis must not shadow.
_RESERVED: Final = frozenset(
    {"scenario", "seed", "figure", "by", "group", "metric", "value"} | {"mean", "low", "high", "n"}
)


def _label(point: Mapping[str, object]) -> str:
    return ", ".join(f"{axis}={value!r}" for axis, value in point.items())


@final
@attrs.frozen(kw_only=True)
class Sweep:
    """One scenario changed at every point of a grid, each point run over the same seeds.

    ``points`` are the grid's points in order (the last axis varying fastest), each a
    mapping of axis name to value; ``replications`` holds each point's
    :class:`Replication`, in the same order. The seeds are shared, so any two points
    compare on common random numbers (:meth:`comparison`).
    """

    axes: tuple[str, ...]
    points: tuple[Mapping[str, object], ...]
    replications: tuple[Replication, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds every point ran, in order. O(n)."""
        return self.replications[0].seeds

    def labels(self) -> list[str]:
        """Each point's label, ``"no_show=0.1, overbooking=0.2"``: the ``scenario`` of its
        tidy rows and its name in :meth:`comparison`. O(points)."""
        return [_label(point) for point in self.points]

    def replication(self, **point: object) -> Replication:
        """The replication at one point: ``sweep.replication(no_show=0.1,
        overbooking=0.2)``. O(points)."""
        for at, rep in zip(self.points, self.replications, strict=True):
            if dict(at) == point:
                return rep
        raise InvalidArgumentError(f"no point {_label(point)} in the sweep over {self.axes}")

    def rows(self) -> list[dict[str, object]]:
        """One row per point and figure: the point's axes as columns, then the figure's
        estimate over the seeds as in :class:`EstimateRow`, for
        ``pandas.DataFrame(sweep.rows()).pivot_table(...)``. O(points * figures * n)."""
        return [
            {**point, **row}
            for point, rep in zip(self.points, self.replications, strict=True)
            for row in rep.rows()
        ]

    def tidy(self) -> list[dict[str, object]]:
        """Every figure of every seed at every point in long form: the point's axes as
        columns, then a :class:`TidyRow` whose ``scenario`` is the point's label.
        O(points * figures * n)."""
        return [
            {**point, **row}
            for point, label, rep in zip(self.points, self.labels(), self.replications, strict=True)
            for row in rep.tidy(label)
        ]

    def comparison(self, **baseline: object) -> Comparison:
        """Every point against the point ``baseline`` (``sweep.comparison(no_show=0.1,
        overbooking=0.0)``), paired seed by seed, from the days already run, named by
        :meth:`labels`. O(points)."""
        base = self.replication(**baseline)
        named = dict(zip(self.labels(), self.replications, strict=True))
        label = next(n for n, rep in named.items() if rep is base)
        ordered = {label: base, **{n: r for n, r in named.items() if n != label}}
        return Comparison(baseline=label, replications=FrozenMap(ordered))

    def __repr__(self) -> str:
        shape = " x ".join(
            f"{len({repr(p[axis]) for p in self.points})} {axis}" for axis in self.axes
        )
        return f"<Sweep {shape}: {len(self.points)} points over {len(self.seeds)} seeds>"


def sweep(
    scenario: Scenario,
    grid: Mapping[str, Iterable[object]],
    change: Callable[..., Scenario],
    seeds: Iterable[int],
    *,
    map: Mapper = map,
    progress: Progress | None = None,
) -> Sweep:
    """Run ``scenario`` changed at every point of ``grid`` over the same seeds.

    ``grid`` maps each axis's name to its values, ``{"no_show": [0.05, 0.15], "overbooking":
    [0.0, 0.2]}``; at each point of their product ``change(scenario, no_show=0.05,
    overbooking=0.2)`` returns the scenario to run. ``change`` runs here, in this process,
    so it may be a lambda or a closure: only the scenarios it returns travel to the workers.
    Every day of every point goes through ``map`` in one call (any ``map``-like executor,
    as for :func:`replicate`); ``progress(done, total)``, if given, is called after each
    comes back. O(points * seeds * day).
    """
    if not isinstance(scenario, Scenario):
        raise InvalidArgumentError(f"scenario must be a Scenario, got scenario={scenario!r}")
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidArgumentError(
            f"grid must be a non-empty mapping of axis name to values, got grid={grid!r}"
        )
    axes: dict[str, list[object]] = {}
    for axis, values in grid.items():
        if not isinstance(axis, str) or not axis.isidentifier() or axis in _RESERVED:
            raise InvalidArgumentError(
                f"grid axes must be identifiers other than {sorted(_RESERVED)}, got {axis!r}"
            )
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise InvalidArgumentError(f"grid[{axis!r}] must be a sequence, got {values!r}")
        axes[axis] = list(values)
        if not axes[axis]:
            raise InvalidArgumentError(f"grid[{axis!r}] must hold at least one value, got none")
    if not callable(change):
        raise InvalidArgumentError(f"change must be callable, got change={change!r}")
    checked = _seeds(scenario, seeds)
    _check_runner(map, progress)
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    scenarios: dict[str, Scenario] = {}
    for point in points:
        changed = change(scenario, **point)
        if not isinstance(changed, Scenario):
            raise InvalidArgumentError(
                f"change must return a Scenario, got {changed!r} at {_label(point)}"
            )
        scenarios[_label(point)] = changed
    if len(scenarios) != len(points):
        raise InvalidArgumentError(f"grid values must be distinct along each axis, got {grid!r}")
    replications = _run(scenarios, checked, map, progress)
    return Sweep(
        axes=tuple(axes),
        points=tuple(FrozenMap(point) for point in points),
        replications=tuple(replications.values()),
    )
