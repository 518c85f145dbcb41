"""The analyst's toolkit: typed rows, tidy rows, comparisons, sweeps, and the executors that
run them (a process pool, Dask distributed, Ray), each giving what a serial run gives."""

from __future__ import annotations

import importlib
import math
import pickle
import statistics
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, get_type_hints

import attrs
import pytest

from opd_engine import OnFull, Overbooking, Reallocation, Token
from opd_engine.simulation import (
    OUTCOME_ORDER,
    PRIORITY_ORDER,
    SOURCE_ORDER,
    Comparison,
    DifferenceRow,
    EstimateRow,
    EventRecord,
    IdleRecord,
    RefusalRecord,
    Scenario,
    Summary,
    Sweep,
    TidyRow,
    TokenRecord,
    TokenRow,
    _engine,
    _stats,
    categorise,
    compare,
    replicate,
    simulate,
    sweep,
)
from opd_engine.simulation._records import split_figure

# pandas ships no type information; the tests use it as a notebook would.
pd: Any = importlib.import_module("pandas")

DAY = Scenario.default_day()
# Full slots refuse instead of waitlisting: fewer tokens, shorter waits.
REJECT = DAY.with_policies(attrs.evolve(DAY.policies, on_full=OnFull.REJECT))
SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare({"waitlist": DAY, "reject": REJECT}, SEEDS)


def keys(row_type: type) -> set[str]:
    return set(get_type_hints(row_type))


# ----------------------------------------------------------------------------- Student's t

# scipy.stats.t.ppf(p, df), rounded to 6 decimals.
KNOWN_T = [
    (0.975, 1, 12.706205),
    (0.975, 2, 4.302653),
    (0.975, 3, 3.182446),
    (0.975, 5, 2.570582),
    (0.975, 9, 2.262157),
    (0.975, 19, 2.093024),
    (0.975, 29, 2.045230),
    (0.975, 30, 2.042272),
    (0.975, 40, 2.021075),
    (0.975, 120, 1.979930),
    (0.975, 999, 1.962341),
    (0.975, 1001, 1.962337),
    (0.975, 10**6, 1.959966),
    (0.995, 10, 3.169273),
    (0.9, 5, 1.475884),
]


@pytest.mark.parametrize(("p", "df", "expected"), KNOWN_T)
def test_t_quantile_matches_known_values(p: float, df: int, expected: float) -> None:
    assert _stats.t_quantile(p, df) == pytest.approx(expected, abs=5e-7)


def test_t_quantile_inverts_the_distribution() -> None:
    for df in (1, 2, 7, 8, 50, 51):
        t = _stats.t975(df)
        assert _stats._central(t, df) == pytest.approx(0.95, abs=1e-12)
    # Heavier tails than the normal, shrinking towards it as df grows.
    values = [_stats.t975(df) for df in range(1, 200)]
    assert values == sorted(values, reverse=True)
    assert values[-1] > statistics.NormalDist().inv_cdf(0.975)


# ----------------------------------------------------------------------------- typed rows


def test_token_records_have_their_typed_keys() -> None:
    result = simulate(DAY, 1)
    token_fields = {a.name for a in attrs.fields(Token)}
    assert keys(TokenRow) == token_fields
    assert keys(TokenRecord) == token_fields | {"wait", "outcome"}
    rows = result.records()
    assert all(set(row) == keys(TokenRecord) for row in rows)
    assert {row["outcome"] for row in rows} <= set(OUTCOME_ORDER)
    assert all(set(row) == keys(TokenRow) for row in result.allocator.records())
    assert all(set(row) == keys(EventRecord) for row in result.events())
    assert result.refusals()
    assert all(set(row) == keys(RefusalRecord) for row in result.refusals())
    no_fill = Reallocation(pull_forward=True, max_moves=2, fill_idle=False)
    strict = DAY.with_policies(attrs.evolve(DAY.policies, reallocation=no_fill))
    idle = simulate(strict, 1).idle_waiting()
    assert idle
    assert all(set(row) == keys(IdleRecord) for row in idle)


def test_triage_orders() -> None:
    assert PRIORITY_ORDER == ("EMERGENCY", "PAID", "FOLLOW_UP", "STANDARD")
    assert SOURCE_ORDER == ("PAID", "FOLLOW_UP", "ONLINE", "WALK_IN")


def test_categorise_puts_priority_and_source_in_triage_order() -> None:
    frame = pd.DataFrame(simulate(DAY, 1).records())
    ordered = categorise(frame)
    assert ordered is not frame
    assert frame["priority"].dtype == object or str(frame["priority"].dtype) == "str"
    assert list(ordered["priority"].cat.categories) == list(PRIORITY_ORDER)
    assert ordered["priority"].cat.ordered
    assert list(ordered["source"].cat.categories) == list(SOURCE_ORDER)
    assert list(ordered["outcome"].cat.categories) == list(OUTCOME_ORDER)
    assert ordered["status"].cat.ordered
    means = ordered.groupby("priority", observed=False)["wait"].mean()
    assert list(means.index) == list(PRIORITY_ORDER)
    # Alphabetically EMERGENCY, FOLLOW_UP, PAID, STANDARD: the order categorise fixes.
    assert list(frame.groupby("priority")["wait"].mean().index) != list(PRIORITY_ORDER)
    assert (ordered["priority"].astype(str) == frame["priority"]).all()
    # Only the columns a frame has.
    events = categorise(pd.DataFrame(simulate(DAY, 1).events()))
    assert list(events["source"].cat.categories) == list(SOURCE_ORDER)
    assert "outcome" not in events


# ----------------------------------------------------------------------------- tidy rows


def test_split_figure() -> None:
    assert split_figure("tokens") == ("day", "all", "tokens")
    assert split_figure("priority.PAID.mean_wait") == ("priority", "PAID", "mean_wait")
    assert split_figure("source.PAID.mean_wait") == ("source", "PAID", "mean_wait")
    assert split_figure("doctor.Dr.A.utilisation") == ("doctor", "Dr.A", "utilisation")
    assert split_figure("moves.PULL_FORWARD") == ("moves", "PULL_FORWARD", "count")


def test_tidy_rows_are_the_figures_in_long_form() -> None:
    result = simulate(DAY, 3)
    figures = result.summary().figures()
    rows = result.tidy("base")
    assert all(set(row) == keys(TidyRow) for row in rows)
    assert [row["figure"] for row in rows] == list(figures)
    assert [row["value"] for row in rows] == list(figures.values())
    assert {row["scenario"] for row in rows} == {"base"}
    assert {row["seed"] for row in rows} == {3}
    # The default day records no estimates: no estimate figure, rather than zeros.
    assert {row["by"] for row in rows} == {"day", "priority", "source", "doctor", "moves"}
    told = simulate(attrs.evolve(DAY, record_estimates=True), 3).tidy("base")
    assert {row["by"] for row in told} == {row["by"] for row in rows} | {"estimate"}
    assert [row for row in told if row["by"] != "estimate"] == rows
    paid = [r for r in rows if r["by"] == "source" and r["group"] == "PAID"]
    assert {r["metric"] for r in paid} >= {"count", "seen", "mean_wait", "refused"}
    [mean] = [r["value"] for r in paid if r["metric"] == "mean_wait"]
    assert mean == result.summary().by_source["PAID"].mean_wait


def test_replication_tidy_and_rows() -> None:
    rep = replicate(DAY, [1, 2])
    tidy = rep.tidy("x")
    assert tidy == simulate(DAY, 1).tidy("x") + simulate(DAY, 2).tidy("x")
    rows = rep.rows()
    assert all(set(row) == keys(EstimateRow) for row in rows)
    estimates = rep.estimates()
    for row in rows:
        assert (row["by"], row["group"], row["metric"]) == split_figure(row["figure"])
        assert row["mean"] == estimates[row["figure"]].mean
    frame = pd.DataFrame(tidy)
    assert frame.groupby("seed").size().to_dict() == {
        1: len(simulate(DAY, 1).summary().figures()),
        2: len(simulate(DAY, 2).summary().figures()),
    }


# ----------------------------------------------------------------------------- comparisons


def test_comparison_pairs_the_seeds(comparison: Comparison) -> None:
    assert comparison.baseline == "waitlist"
    assert comparison.names == ("waitlist", "reject")
    assert comparison.seeds == SEEDS
    assert comparison.replications["reject"].summaries == replicate(REJECT, SEEDS).summaries
    figure = "priority.STANDARD.mean_wait"
    base = [s.figures()[figure] for s in comparison.replications["waitlist"].summaries]
    other = [s.figures()[figure] for s in comparison.replications["reject"].summaries]
    diffs = [b - a for a, b in zip(base, other, strict=True)]
    mean = statistics.fmean(diffs)
    half = 2.776445 * statistics.stdev(diffs) / math.sqrt(5)  # t(0.975, 4)
    found = comparison.difference("reject", figure)
    assert found.n == 5
    assert found.mean == pytest.approx(mean)
    assert found.high - found.mean == pytest.approx(half, rel=1e-6)
    assert found.mean - found.low == pytest.approx(half, rel=1e-6)
    # Refusing when full shortens standard patients' waits.
    assert found.high < 0
    refused = [b.refused - a.refused for a, b in zip(
        comparison.replications["waitlist"].summaries,
        comparison.replications["reject"].summaries, strict=True)]  # fmt: skip
    assert all(r > 0 for r in refused)
    assert comparison.difference("reject", "refused").low > 0


def test_common_random_numbers_tighten_the_interval(comparison: Comparison) -> None:
    """Paired over the same seeds, the interval is narrower than two independent runs'."""
    figure = "priority.STANDARD.mean_wait"
    paired = comparison.difference("reject", figure)
    base = comparison.replications["waitlist"].estimates()[figure]
    other = comparison.replications["reject"].estimates()[figure]
    independent = math.hypot(base.high - base.mean, other.high - other.mean)
    assert paired.high - paired.mean < independent


def test_comparison_rows(comparison: Comparison) -> None:
    rows = comparison.rows()
    assert all(set(row) == keys(DifferenceRow) for row in rows)
    assert {row["scenario"] for row in rows} == {"reject"}
    assert {row["baseline"] for row in rows} == {"waitlist"}
    differences = comparison.differences("reject")
    assert [row["figure"] for row in rows] == list(differences)
    for row in rows:
        estimate = differences[row["figure"]]
        assert row["difference"] == estimate.mean
        assert (row["low"], row["high"], row["n"]) == (estimate.low, estimate.high, estimate.n)
        assert row["half_width"] == pytest.approx(estimate.high - estimate.mean)
        assert row["scenario_mean"] - row["baseline_mean"] == pytest.approx(row["difference"])
    assert {row["scenario"] for row in comparison.tidy()} == {"waitlist", "reject"}
    assert "reject" in repr(comparison)
    assert "<table>" in comparison._repr_html_()


def test_a_scenario_against_itself_differs_by_nothing() -> None:
    same = compare({"a": DAY, "b": DAY, "c": REJECT}, [1, 2, 3], baseline="b")
    assert same.names == ("a", "b", "c")
    assert same.baseline == "b"
    for estimate in same.differences("a").values():
        assert estimate.mean == estimate.low == estimate.high == 0
    assert {row["scenario"] for row in same.rows()} == {"a", "c"}


def test_waits_of_groups_nobody_was_seen_in_pair_only_where_both_exist() -> None:
    """A figure a seed lacks (a wait with nobody seen) is left out of that seed's pair."""
    fewer = attrs.evolve(DAY, no_show=dict.fromkeys(DAY.no_show, 1.0))
    result = compare({"base": DAY, "empty": fewer}, [1, 2])
    differences = result.differences("empty")
    assert "priority.PAID.mean_wait" not in differences
    assert differences["tokens"].n == 2


def test_progress_is_reported_from_this_process() -> None:
    calls: list[tuple[int, int]] = []
    compare(
        {"a": DAY, "b": REJECT},
        [1, 2, 3],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(i, 6) for i in range(1, 7)]
    calls.clear()
    replicate(DAY, [4, 5], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare({"a": DAY}, [1]), "at least two"),
        (lambda: compare([DAY, REJECT], [1]), "mapping of name"),  # type: ignore[arg-type]
        (lambda: compare({"a": DAY, "b": "x"}, [1]), r"scenarios\['b'\]"),  # type: ignore[dict-item]
        (lambda: compare({"a": DAY, " b": DAY}, [1]), "names"),
        (lambda: compare({"a": DAY, "b": DAY}, [1], baseline="c"), "baseline"),
        (lambda: compare({"a": DAY, "b": DAY}, []), "at least one seed"),
        (lambda: compare({"a": DAY, "b": DAY}, [1], map=1), "map"),  # type: ignore[arg-type]
        (lambda: compare({"a": DAY, "b": DAY}, [1], progress=1), "progress"),  # type: ignore[arg-type]
    ],
)
def test_bad_comparisons_are_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_unknown_scenario_or_figure(comparison: Comparison) -> None:
    with pytest.raises(ValueError, match="scenario must be one of"):
        comparison.differences("nope")
    with pytest.raises(ValueError, match="figure 'nope'"):
        comparison.difference("reject", "nope")


def test_a_map_that_returns_futures_is_named() -> None:
    def futures(fn: Callable[[Any], Summary], jobs: Iterable[Any]) -> list[object]:
        return [object() for _ in jobs]

    with pytest.raises(ValueError, match="get_executor"):
        replicate(DAY, [1], map=futures)  # type: ignore[arg-type]

    def short(fn: Callable[[Any], Summary], jobs: Iterable[Any]) -> list[Summary]:
        return [fn(job) for job in list(jobs)[:1]]

    with pytest.raises(ValueError, match="one result per job"):
        replicate(DAY, [1, 2], map=short)


# ----------------------------------------------------------------------------- sweeps


def vary(day: Scenario, no_show: float, overbooking: float) -> Scenario:
    """The sweep's change: every source's no-show rate, and overbooking by a rate."""
    policies = attrs.evolve(day.policies, capacity=Overbooking(overbooking))
    return attrs.evolve(day, no_show=dict.fromkeys(day.no_show, no_show), policies=policies)


GRID = {"no_show": [0.0, 0.3], "overbooking": [0.0, 0.4, 0.5]}


@pytest.fixture(scope="module")
def grid() -> Sweep:
    return sweep(REJECT, GRID, vary, [1, 2])


def test_sweep_runs_every_point(grid: Sweep) -> None:
    assert grid.axes == ("no_show", "overbooking")
    assert [dict(p) for p in grid.points] == [
        {"no_show": n, "overbooking": o} for n in GRID["no_show"] for o in GRID["overbooking"]
    ]
    assert grid.seeds == (1, 2)
    assert len(grid.replications) == 6
    point = grid.replication(no_show=0.3, overbooking=0.5)
    assert point.summaries == replicate(vary(REJECT, 0.3, 0.5), [1, 2]).summaries
    assert grid.labels()[1] == "no_show=0.0, overbooking=0.4"
    assert repr(grid) == "<Sweep 2 no_show x 3 overbooking: 6 points over 2 seeds>"
    with pytest.raises(ValueError, match="no point"):
        grid.replication(no_show=0.5, overbooking=0.0)


def test_sweep_rows_carry_the_axes(grid: Sweep) -> None:
    rows = pd.DataFrame(grid.rows())
    tokens = rows[rows["figure"] == "tokens"].pivot_table(
        index="no_show", columns="overbooking", values="mean"
    )
    assert tokens.shape == (2, 3)
    # More overbooking issues more tokens; no-shows do not change how many are issued.
    for no_show in GRID["no_show"]:
        assert list(tokens.loc[no_show]) == sorted(tokens.loc[no_show])
        assert tokens.loc[no_show].iloc[-1] > tokens.loc[no_show].iloc[0]
    tidy = pd.DataFrame(grid.tidy())
    assert set(tidy.columns) == {"no_show", "overbooking"} | keys(TidyRow)
    assert tidy["scenario"].nunique() == 6
    assert set(tidy["seed"]) == {1, 2}


def test_sweep_comparison_uses_the_days_already_run(grid: Sweep) -> None:
    versus = grid.comparison(no_show=0.3, overbooking=0.0)
    assert versus.baseline == "no_show=0.3, overbooking=0.0"
    assert versus.names[0] == versus.baseline
    assert len(versus.names) == 6
    assert versus.replications[versus.baseline] is grid.replication(no_show=0.3, overbooking=0.0)
    more = versus.difference("no_show=0.3, overbooking=0.5", "tokens")
    assert more.mean > 0


def test_sweep_progress_and_lambdas() -> None:
    calls: list[tuple[int, int]] = []
    result = sweep(
        DAY,
        {"rate": [0.0, 0.1]},
        lambda day, rate: attrs.evolve(day, missed_call=rate),
        [1],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 2), (2, 2)]
    assert result.replications[1].scenario.missed_call == 0.1


@pytest.mark.parametrize(
    ("grid_", "change", "message"),
    [
        ({}, vary, "non-empty"),
        ({"seed": [1]}, vary, "identifiers"),
        ({"two words": [1]}, vary, "identifiers"),
        ({"no_show": []}, vary, "at least one value"),
        ({"no_show": "0.1"}, vary, "sequence"),
        ({"x": [1]}, lambda day, x: None, "must return a Scenario"),
        ({"x": [1, 1]}, lambda day, x: day, "distinct"),
        ({"x": [1]}, 3, "change must be callable"),
    ],
)
def test_bad_sweeps_are_refused(grid_: Any, change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep(DAY, grid_, change, [1])
    with pytest.raises(ValueError, match="scenario must be a Scenario"):
        sweep(DAY.policies, GRID, vary, [1])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- executors


def test_the_job_function_pickles_by_reference() -> None:
    """What a process pool, Dask or Ray sends: a top-level function and (scenario, seed)."""
    assert pickle.loads(pickle.dumps(_engine._summary_job)) is _engine._summary_job
    job = (REJECT, 7)
    assert pickle.loads(pickle.dumps(job)) == job
    assert _engine._summary_job(job) == simulate(REJECT, 7).summary()


def test_a_process_pool_gives_what_a_serial_run_gives(comparison: Comparison) -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        spread = compare({"waitlist": DAY, "reject": REJECT}, SEEDS, map=pool.map)
        grid = sweep(DAY, {"no_show": [0.0, 0.3]}, lambda d, no_show: vary(d, no_show, 0), [1])
        spread_grid = sweep(
            DAY, {"no_show": [0.0, 0.3]}, lambda d, no_show: vary(d, no_show, 0), [1], map=pool.map
        )
    assert spread.replications == comparison.replications
    assert spread.rows() == comparison.rows()
    assert spread_grid.replications == grid.replications


def _dask_map(client: Any) -> Callable[[Callable[[Any], Summary], Iterable[Any]], list[Summary]]:
    """``client.map`` submits and returns futures; gather waits for them, in order."""

    def mapper(fn: Callable[[Any], Summary], jobs: Iterable[Any]) -> list[Summary]:
        results: list[Summary] = client.gather(client.map(fn, list(jobs)))
        return results

    return mapper


def test_dask_distributed_gives_what_a_serial_run_gives(comparison: Comparison) -> None:
    """A real LocalCluster, two worker processes on the loopback interface: replications,
    comparisons and sweeps through its executor's map and through client.map + gather."""
    distributed: Any = importlib.import_module("distributed")  # untyped

    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, timeout="20s") as client,
    ):
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        executor = client.get_executor()
        rep = replicate(DAY, SEEDS, map=executor.map)
        spread = compare({"waitlist": DAY, "reject": REJECT}, SEEDS, map=_dask_map(client))
        grid = sweep(REJECT, GRID, vary, [1, 2], map=executor.map)
    assert len(pids) == 2
    assert __import__("os").getpid() not in pids
    assert rep.summaries == comparison.replications["waitlist"].summaries
    assert spread.replications == comparison.replications
    assert spread.rows() == comparison.rows()
    assert grid.replications == sweep(REJECT, GRID, vary, [1, 2]).replications


def _ray_map(fn: Callable[[Any], Summary], jobs: Iterable[Any]) -> list[Summary]:
    """Ray's map: one remote task per job, gathered in order."""
    import ray

    task = ray.remote(fn)
    results: list[Summary] = ray.get([task.remote(job) for job in jobs])
    return results


def test_ray_gives_what_a_serial_run_gives(comparison: Comparison) -> None:
    """A local Ray instance with two worker processes, on the loopback interface."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        spread = compare({"waitlist": DAY, "reject": REJECT}, SEEDS, map=_ray_map)
        rep = replicate(DAY, [1, 2], map=_ray_map)
    finally:
        ray.shutdown()
    assert spread.replications == comparison.replications
    assert rep.summaries == comparison.replications["waitlist"].summaries[:2]
