"""Cost per simulated patient of opd-engine's simulation against Ciw: on the same 3-class
M/M/1 system, and on a day-sized model of the default day.

Run from the repository root (not collected by pytest; needs ``pip install ciw``)::

    python tests/benchmarks/bench_simulation.py            # ~20,000 patients, 40 days per run
    python tests/benchmarks/bench_simulation.py --quick    # ~3,000 patients, 10 days per run
    python tests/benchmarks/bench_simulation.py --patients 50000 --repeats 5 --json out.json
    python tests/benchmarks/bench_simulation.py --model day --days 100

**The 3-class M/M/1.** One server (one doctor), three classes arriving as Poisson
processes (PAID, FOLLOW_UP and STANDARD at 0.02, 0.03 and 0.025 per minute), exponential
service with a 10-minute mean for everyone (rho = 0.75), non-preemptive priority in that
order and first come, first served within a class. The same horizon is simulated by

- ``opd-engine``: :func:`opd_engine.simulation.simulate` on a one-doctor scenario of walk-ins
  only, one slot spanning the horizon with room for everyone, ``StrictPriority`` ordering,
  every booking, check-in, call and completion going through the real ``Allocator``; timed
  from the call to :func:`simulate` to its per-patient ``records()`` (what a user pays, and
  what Ciw's side includes);
- ``Ciw`` (https://ciw.readthedocs.io): ``create_network`` with ``priority_classes`` (lower
  number served first, non-preemptive), ``Simulation``, ``simulate_until_max_time`` and
  ``get_all_records``, all timed.

Cost per patient is run time / patients served, the median over ``--repeats`` runs (seeds
``seed``, ``seed + 1``, ...), printed with its spread. A short untimed run of each comes
first, so that neither pays for the process's cold start; then the two simulators take
turns, each going first in every other repeat. The ratio
Ciw / opd-engine is the figure to quote: absolute times on a shared machine are noise; the
target is a ratio >= 1 (opd-engine at least as many patients per second as Ciw), the goal
1.5.

To show both simulate the same system, the per-class mean waits in queue of each are
printed next to Cobham's analytic waits (:func:`opd_engine.simulation.theory.cobham_waits`).
Both keep the same patients: arrived after the warm-up fraction of the horizon and done
before its end; the means pool every repeat, with a standard error over repeats.

**The day-sized model.** ``Scenario.default_day()`` is the reference workload: four doctors,
about 100 patients (pre-booked online, paid and follow-up patients, walk-ins, emergencies),
of whom about 80 are seen. A run simulates ``--days`` days (seeds ``seed``, ``seed + 1``,
...) with each simulator, and its cost per patient is its run time over the patients it
served. The two sides:

- ``opd-engine``: ``simulate(Scenario.default_day(), seed)`` and its ``records()``, timed,
  day by day: the whole default day, every booking, check-in, call and completion through
  the real ``Allocator``, with everything else the day holds (slots, pre-booking,
  cancellations, reschedules, no-shows, missed calls, re-triage, a break, a late start,
  an absence, a doctor going home);
- ``Ciw``: per day, ``create_network``, ``Simulation``, ``simulate_until_max_time`` and
  ``get_all_records``, timed, on one node of 4 servers (the day's four doctors) fed the
  same patients. Before the timing, each day is simulated once by opd-engine, untimed,
  and its seen patients become Ciw's: one customer class per triage level
  (``priority_classes``: emergency first, then paid, follow-up, standard; non-preemptive),
  each class's arrivals a ``Sequential`` distribution of the gaps between its patients'
  check-in times (then one gap past the horizon, so that none comes twice), and its
  service times a ``Sequential`` distribution of its patients' consultation lengths.

What matches: the patients (the same number, classes, arrival times and consultation
lengths, so the same work per patient), the servers (four) and priority service by
triage level; both sides build their per-patient records inside the timing. What is an
approximation: Ciw pools the four doctors into one queue (each opd-engine patient waits
for their own doctor), serves first come, first served within a class (opd-engine's
default day ages patients through the levels and seats them in 20- or 30-minute slots),
and has no duty hours, breaks, absences, missed calls or re-triage; each class's service
times go to its patients in the order Ciw starts serving them, not patient by patient;
and the patients who cancel, do not come or go unseen are opd-engine's work only (they
are in its day, not in Ciw's, and not in either side's count of patients served). So the
mean waits of the two differ and are printed for scale only. The target is a ratio
Ciw / opd-engine >= 1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from opd_engine import Policies, Priority, StrictPriority
from opd_engine.simulation import (
    Arrivals,
    DoctorPlan,
    Exponential,
    Scenario,
    Session,
    simulate,
)
from opd_engine.simulation.theory import cobham_waits

# Most urgent first: the order of Cobham's formula and of Ciw's priority numbers.
RATES: dict[Priority, float] = {  # arrivals per minute
    Priority.PAID: 0.02,
    Priority.FOLLOW_UP: 0.03,
    Priority.STANDARD: 0.025,
}
MEAN_SERVICE = 10.0  # minutes, exponential
TOTAL_RATE = sum(RATES.values())
RHO = TOTAL_RATE * MEAN_SERVICE
MINUTE = timedelta(minutes=1)


@attrs.frozen
class Run:
    """One timed run of one simulator."""

    seconds: float
    served: int
    # Per class: waits (minutes) of the patients kept after the warm-up.
    waits: dict[str, list[float]]

    @property
    def microseconds_per_patient(self) -> float:
        return self.seconds * 1e6 / self.served


def hours_for(patients: int) -> int:
    """Whole hours of horizon in which about ``patients`` arrive."""
    return max(1, round(patients / (TOTAL_RATE * 60)))


def load_ciw() -> Any:
    try:
        return importlib.import_module("ciw")  # untyped: a benchmark-only dependency
    except ImportError:
        raise SystemExit(
            "bench_simulation.py compares against Ciw, which is not installed: pip install ciw"
        ) from None


# ------------------------------------------------------------------------- opd-engine


def scenario_for(hours: int) -> Scenario:
    end = timedelta(hours=hours)
    return Scenario(
        doctors=[
            DoctorPlan(
                id="D1",
                sessions=[
                    Session(start=timedelta(0), end=end, slot_minutes=hours * 60, capacity=10**7)
                ],
                consult=Exponential(MEAN_SERVICE),
                arrivals=[
                    Arrivals(per_hour=rate * 60, start=timedelta(0), until=end, priority=priority)
                    for priority, rate in RATES.items()
                ],
            )
        ],
        policies=Policies(ordering=StrictPriority()),
        no_show={},
        cancellation={},
    )


def run_opd(hours: int, seed: int, warmup: float) -> Run:
    scenario = scenario_for(hours)
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter_ns()
        result = simulate(scenario, seed)
        rows = result.records()  # timed, as Ciw's get_all_records() is
        elapsed = time.perf_counter_ns() - began
    finally:
        gc.enable()
    midnight = scenario.midnight
    horizon = hours * 60.0
    first = warmup * horizon
    waits: dict[str, list[float]] = {p.name: [] for p in RATES}
    served = 0
    for row in rows:
        wait, arrived, done = row["wait"], row["checked_in_at"], row["completed_at"]
        if wait is None or not isinstance(arrived, datetime) or not isinstance(done, datetime):
            continue
        assert isinstance(wait, float)
        served += 1
        if (arrived - midnight) / MINUTE >= first and (done - midnight) / MINUTE <= horizon:
            waits[str(row["priority"])].append(wait)
    return Run(seconds=elapsed / 1e9, served=served, waits=waits)


# ------------------------------------------------------------------------- Ciw


def run_ciw(ciw: Any, hours: int, seed: int, warmup: float) -> Run:
    names = [p.name for p in RATES]
    horizon = hours * 60.0
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter_ns()
        ciw.seed(seed)
        network: Any = ciw.create_network(
            arrival_distributions={p.name: [ciw.dists.Exponential(r)] for p, r in RATES.items()},
            service_distributions={
                name: [ciw.dists.Exponential(1 / MEAN_SERVICE)] for name in names
            },
            number_of_servers=[1],
            priority_classes={name: rank for rank, name in enumerate(names)},
        )
        simulation: Any = ciw.Simulation(network)
        simulation.simulate_until_max_time(horizon)
        records: list[Any] = simulation.get_all_records()
        elapsed = time.perf_counter_ns() - began
    finally:
        gc.enable()
    first = warmup * horizon
    waits: dict[str, list[float]] = {name: [] for name in names}
    served = 0
    for record in records:
        if record.record_type != "service":
            continue
        served += 1
        if record.arrival_date >= first and record.exit_date <= horizon:
            waits[record.customer_class].append(record.waiting_time)
    return Run(seconds=elapsed / 1e9, served=served, waits=waits)


# ------------------------------------------------------------------------- day-sized model

DAY_SERVERS = 4  # the default day's doctors
DAY_HORIZON = 24 * 60.0  # minutes from midnight: every patient of the day is done by then
# Ciw's class names and priority numbers: the triage levels, most urgent first.
LEVELS: dict[str, int] = {p.name: int(p) for p in Priority}


@attrs.frozen
class DayPatients:
    """One default day's seen patients, per class as Ciw takes them: the gaps between their
    check-ins (minutes, from midnight) and their consultation lengths (minutes, in the order
    their consultations started)."""

    gaps: dict[str, list[float]]
    services: dict[str, list[float]]
    served: int


def day_patients(scenario: Scenario, seed: int) -> DayPatients:
    """The patients opd-engine's day of ``seed`` saw, for Ciw (untimed)."""
    midnight = scenario.midnight
    seen: dict[str, list[tuple[float, float, float]]] = {}
    for row in simulate(scenario, seed).records():
        arrived, called, done = row["checked_in_at"], row["called_at"], row["completed_at"]
        if not (
            isinstance(arrived, datetime)
            and isinstance(called, datetime)
            and isinstance(done, datetime)
        ):
            continue
        seen.setdefault(str(row["priority"]), []).append(
            ((arrived - midnight) / MINUTE, (called - midnight) / MINUTE, (done - called) / MINUTE)
        )
    gaps: dict[str, list[float]] = {}
    services: dict[str, list[float]] = {}
    for name, patients in seen.items():
        times = sorted(arrived for arrived, _, _ in patients)
        gaps[name] = [b - a for a, b in zip([0.0, *times], times, strict=False)] + [
            10 * DAY_HORIZON
        ]
        services[name] = [service for _, _, service in sorted(patients, key=lambda p: p[1])]
    return DayPatients(gaps=gaps, services=services, served=sum(map(len, seen.values())))


def day_waits(rows: Sequence[Any]) -> tuple[dict[str, list[float]], int]:
    """Per class, the waits (minutes) of a day's seen patients; and how many were seen."""
    waits: dict[str, list[float]] = {name: [] for name in LEVELS}
    served = 0
    for row in rows:
        if row["completed_at"] is None:
            continue
        served += 1
        wait = row["wait"]
        assert isinstance(wait, float)
        waits[str(row["priority"])].append(wait)
    return waits, served


def run_opd_days(scenario: Scenario, seeds: Sequence[int]) -> Run:
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter_ns()
        days = [simulate(scenario, seed).records() for seed in seeds]
        elapsed = time.perf_counter_ns() - began
    finally:
        gc.enable()
    waits: dict[str, list[float]] = {name: [] for name in LEVELS}
    served = 0
    for rows in days:
        day, count = day_waits(rows)
        served += count
        for name, values in day.items():
            waits[name].extend(values)
    return Run(seconds=elapsed / 1e9, served=served, waits=waits)


def run_ciw_days(ciw: Any, days: Sequence[DayPatients], seeds: Sequence[int]) -> Run:
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter_ns()
        every: list[list[Any]] = []
        for patients, seed in zip(days, seeds, strict=True):
            ciw.seed(seed)
            network: Any = ciw.create_network(
                arrival_distributions={
                    name: [ciw.dists.Sequential(gaps)] for name, gaps in patients.gaps.items()
                },
                service_distributions={
                    name: [ciw.dists.Sequential(times)] for name, times in patients.services.items()
                },
                number_of_servers=[DAY_SERVERS],
                priority_classes={name: LEVELS[name] for name in patients.gaps},
            )
            simulation: Any = ciw.Simulation(network)
            simulation.simulate_until_max_time(DAY_HORIZON)
            every.append(simulation.get_all_records())
        elapsed = time.perf_counter_ns() - began
    finally:
        gc.enable()
    waits: dict[str, list[float]] = {name: [] for name in LEVELS}
    served = 0
    for records in every:
        for record in records:
            if record.record_type != "service":
                continue
            served += 1
            waits[record.customer_class].append(record.waiting_time)
    return Run(seconds=elapsed / 1e9, served=served, waits=waits)


# ------------------------------------------------------------------------- report


def pooled(runs: Sequence[Run], name: str) -> tuple[float, float | None, int]:
    """Mean wait of class ``name`` over every run, its standard error over runs, and n."""
    every = [w for run in runs for w in run.waits[name]]
    means = [statistics.fmean(run.waits[name]) for run in runs if run.waits[name]]
    error = statistics.stdev(means) / math.sqrt(len(means)) if len(means) > 1 else None
    return (statistics.fmean(every) if every else math.nan), error, len(every)


def timing_table(pairs: Sequence[tuple[str, Sequence[Run]]]) -> dict[str, dict[str, Any]]:
    """Print each simulator's median cost per patient and spread; return them for JSON."""
    header = f"{'simulator':<12}{'us/patient':>12}{'spread':>8}{'served':>10}{'seconds':>10}"
    print(header)
    print("-" * len(header))
    times: dict[str, dict[str, Any]] = {}
    for label, runs in pairs:
        samples = [r.microseconds_per_patient for r in runs]
        us = statistics.median(samples)
        served = statistics.median(r.served for r in runs)
        seconds = statistics.median(r.seconds for r in runs)
        spread = (max(samples) - min(samples)) / us
        times[label] = {
            "microseconds_per_patient": us,
            "samples_microseconds_per_patient": samples,
            "served": [r.served for r in runs],
            "seconds": [r.seconds for r in runs],
            "spread": spread,
        }
        print(f"{label:<12}{us:>12.1f}{spread:>8.0%}{served:>10,.0f}{seconds:>10.3f}")
    print("spread: (slowest - fastest run) / median")
    return times


def compare_mm1(
    ciw: Any, patients: int, repeats: int, warmup: float, first_seed: int
) -> dict[str, Any]:
    """The 3-class M/M/1 comparison, printed; its figures for JSON."""
    hours = hours_for(patients)
    horizon = hours * 60

    # One short untimed run of each first, so that neither pays for the process's cold
    # start; then the two take turns, each going first in every other repeat.
    run_opd(hours_for(1_000), first_seed, warmup)
    run_ciw(ciw, hours_for(1_000), first_seed, warmup)
    opd_runs: list[Run] = []
    ciw_runs: list[Run] = []
    for repeat in range(repeats):
        seed = first_seed + repeat
        if repeat % 2 == 0:
            opd_runs.append(run_opd(hours, seed, warmup))
            ciw_runs.append(run_ciw(ciw, hours, seed, warmup))
        else:
            ciw_runs.append(run_ciw(ciw, hours, seed, warmup))
            opd_runs.append(run_opd(hours, seed, warmup))

    print(
        f"3-class M/M/1, non-preemptive priority, rho={RHO:.2f}, horizon {horizon:,} min "
        f"(~{round(TOTAL_RATE * horizon):,} patients), median of {repeats} runs "
        f"(Python {platform.python_version()}, Ciw {ciw.__version__})"
    )
    times = timing_table([("opd-engine", opd_runs), ("ciw", ciw_runs)])
    ratio = (
        times["ciw"]["microseconds_per_patient"] / times["opd-engine"]["microseconds_per_patient"]
    )
    verdict = "meets" if ratio >= 1 else "below"
    print(f"ciw / opd-engine: {ratio:.2f}x per patient ({verdict} the 1x target; goal 1.5x)")

    theory = cobham_waits(
        list(RATES.values()),
        [MEAN_SERVICE] * len(RATES),
        [2 * MEAN_SERVICE**2] * len(RATES),
    )
    print()
    print(
        f"mean wait in queue, minutes (after {warmup:.0%} warm-up, pooled over {repeats} runs, "
        "+- s.e. over runs)"
    )
    header = f"{'class':<11}{'Cobham':>8}{'opd-engine':>26}{'ciw':>26}"
    print(header)
    print("-" * len(header))
    waits: dict[str, dict[str, Any]] = {}
    for (priority, _), analytic in zip(RATES.items(), theory, strict=True):
        name = priority.name
        cells = [f"{name:<11}{analytic:>8.2f}"]
        waits[name] = {"cobham": analytic}
        for label, runs in (("opd-engine", opd_runs), ("ciw", ciw_runs)):
            mean, error, n = pooled(runs, name)
            waits[name][label] = {"mean": mean, "standard_error": error, "n": n}
            spread = f" +- {error:.2f}" if error is not None else ""
            cells.append(f"{f'{mean:.2f}{spread} ({mean / analytic - 1:+.1%})':>26}")
        print("".join(cells))
    return {
        "repeats": repeats,
        "seeds": [first_seed + i for i in range(repeats)],
        "horizon_minutes": horizon,
        "expected_patients": TOTAL_RATE * horizon,
        "rates_per_minute": {p.name: r for p, r in RATES.items()},
        "mean_service_minutes": MEAN_SERVICE,
        "rho": RHO,
        "warmup": warmup,
        "timing": times,
        "ratio_ciw_over_opd_engine": ratio,
        "mean_waits_minutes": waits,
    }


def compare_day(ciw: Any, days: int, repeats: int, first_seed: int) -> dict[str, Any]:
    """The day-sized comparison, printed; its figures for JSON."""
    scenario = Scenario.default_day()
    seeds = [[first_seed + repeat * days + day for day in range(days)] for repeat in range(repeats)]
    # Ciw's patients: each day simulated once by opd-engine, untimed (also its warm-up).
    patients = [[day_patients(scenario, seed) for seed in run] for run in seeds]
    run_ciw_days(ciw, patients[0][:1], seeds[0][:1])
    opd_runs: list[Run] = []
    ciw_runs: list[Run] = []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            opd_runs.append(run_opd_days(scenario, seeds[repeat]))
            ciw_runs.append(run_ciw_days(ciw, patients[repeat], seeds[repeat]))
        else:
            ciw_runs.append(run_ciw_days(ciw, patients[repeat], seeds[repeat]))
            opd_runs.append(run_opd_days(scenario, seeds[repeat]))
        expected = sum(day.served for day in patients[repeat])
        assert opd_runs[-1].served == ciw_runs[-1].served == expected, "not the same patients"

    print(
        f"day-sized model: Scenario.default_day(), {DAY_SERVERS} servers, {days} days per run, "
        f"median of {repeats} runs (Python {platform.python_version()}, Ciw {ciw.__version__})"
    )
    times = timing_table([("opd-engine", opd_runs), ("ciw", ciw_runs)])
    ratio = (
        times["ciw"]["microseconds_per_patient"] / times["opd-engine"]["microseconds_per_patient"]
    )
    verdict = "meets" if ratio >= 1 else "below"
    print(f"ciw / opd-engine: {ratio:.2f}x per patient ({verdict} the 1x target)")
    print()
    print(
        f"mean wait in queue, minutes, pooled over {repeats} runs (for scale only: Ciw pools "
        "the doctors into one queue)"
    )
    header = f"{'class':<11}{'seen':>8}{'opd-engine':>14}{'ciw':>14}"
    print(header)
    print("-" * len(header))
    waits: dict[str, dict[str, Any]] = {}
    for name in LEVELS:
        seen = sum(len(run.waits[name]) for run in opd_runs)
        if not seen:
            continue
        means = {
            label: statistics.fmean(w for run in runs for w in run.waits[name])
            for label, runs in (("opd-engine", opd_runs), ("ciw", ciw_runs))
        }
        waits[name] = {"seen": seen, **means}
        print(f"{name:<11}{seen:>8,}{means['opd-engine']:>14.2f}{means['ciw']:>14.2f}")
    return {
        "repeats": repeats,
        "days_per_run": days,
        "seeds": seeds,
        "servers": DAY_SERVERS,
        "timing": times,
        "ratio_ciw_over_opd_engine": ratio,
        "mean_waits_minutes": waits,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=20_000, help="M/M/1: expected arrivals")
    parser.add_argument("--days", type=int, default=40, help="day-sized model: days per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="about 3,000 patients (M/M/1), 10 days per run"
    )
    parser.add_argument("--warmup", type=float, default=0.1, help="M/M/1: fraction dropped")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model", choices=("both", "mm1", "day"), default="both", help="which comparison"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    patients: int = 3_000 if args.quick else args.patients
    days: int = 10 if args.quick else args.days
    repeats: int = args.repeats
    warmup: float = args.warmup
    if patients < 1 or days < 1 or repeats < 1 or not 0 <= warmup < 1:
        parser.error("--patients, --days and --repeats must be >= 1 and --warmup in [0, 1)")
    ciw = load_ciw()

    # The M/M/1's figures stay at the top level of the JSON (as bench_core.py reads them);
    # the day-sized model's go under "day_sized".
    document: dict[str, Any] = {"python": platform.python_version(), "ciw": ciw.__version__}
    if args.model in ("both", "mm1"):
        document.update(compare_mm1(ciw, patients, repeats, warmup, args.seed))
    if args.model in ("both", "day"):
        if args.model == "both":
            print()
        document["day_sized"] = compare_day(ciw, days, repeats, args.seed)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
