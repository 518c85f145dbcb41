"""Validation of the simulation against queueing theory: one doctor's walk-ins as an M/G/1 queue.

One doctor works one session of one huge slot (nobody is refused), only walk-ins come, as
independent Poisson streams, one per priority class, and the queue is non-preemptive: a
patient in consultation is never interrupted. A walk-in checks in on arrival, so the
simulated wait (check-in to call) is the M/G/1 wait in queue ``Wq``, which the formulas of
:mod:`opd_engine.simulation.theory` give in closed form for each discipline.

How the comparison is made, for every test:

* **Set-up.** Mean consultation 10 minutes, total load ``rho = 0.6`` split evenly over the
  classes (PAID, FOLLOW_UP, STANDARD; 0.02 arrivals a minute each). At 0.6 the lowest class
  still waits long enough for the disciplines to differ by several minutes, while the
  variance of the waits (which grows like ``(1 - rho)**-4``) stays small enough to estimate
  the means to about 3% in a few seconds.
* **Length.** 20 independent replications (seeds 1..20) of 750 hours each, about 2,700
  patients a replication and 54,000 per scenario.
* **Warm-up and drain.** Each day starts empty, which biases early waits down, and after
  arrivals stop nobody overtakes the last patients, which biases late waits down. Only
  patients who checked in between 10% and 95% of the horizon (75 to 712.5 hours) count.
  The queue forgets its start within a few busy cycles (relaxation time about
  ``E[S] / (1 - sqrt(rho))**2``, some 200 minutes here): 75 hours is over 20 of them.
* **Standard error.** Each replication gives one mean per class; the replications are
  independent and identically distributed, so the standard error of their average is
  their sample standard deviation over ``sqrt(20)``. No within-run correlation has to be
  modelled.
* **Tolerance.** ``|simulated - analytic| <= K * SE`` with ``K = 4``. With 19 degrees of
  freedom, ``P(|t| > 4) < 0.001`` per comparison, so over the 13 such comparisons in
  this file a correct simulation would fail with probability about 1% for a fresh set of
  seeds; the seeds are fixed, so the outcome is deterministic. Every comparison also
  asserts ``SE / analytic < 0.06``, so a pass is never the product of a uselessly wide
  tolerance: the tolerance is at most 24% of the value, and in practice (SE 1.5% to 3%)
  6% to 13%.

The runs of each scenario are shared between tests (computed once per session).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opd_engine import (
    AccumulatingPriority,
    Aging,
    OrderingPolicy,
    Policies,
    Priority,
    StrictPriority,
)
from opd_engine.simulation import (
    Arrivals,
    DoctorPlan,
    Duration,
    Exponential,
    Fixed,
    Scenario,
    Session,
    SimulationResult,
    simulate,
    theory,
)

MEAN_CONSULT = 10.0  # minutes
LOAD = 0.6
CLASSES = (Priority.PAID, Priority.FOLLOW_UP, Priority.STANDARD)
ARRIVAL_RATE = LOAD / MEAN_CONSULT / len(CLASSES)  # per class, per minute
HOURS = 750
SEEDS = tuple(range(1, 21))
WARM_UP = 0.10  # share of the horizon discarded at the start
DRAIN = 0.05  # share of the horizon discarded at the end
K = 4.0  # tolerance in standard errors
MAX_RELATIVE_SE = 0.06

EXPONENTIAL = Exponential(MEAN_CONSULT)
FIXED = Fixed(MEAN_CONSULT)
#: Kleinrock's rates b_p: only their ratios matter; 4:2:1 for PAID:FOLLOW_UP:STANDARD.
ACCUMULATING = AccumulatingPriority(
    rates={
        Priority.EMERGENCY: 8.0,
        Priority.PAID: 4.0,
        Priority.FOLLOW_UP: 2.0,
        Priority.STANDARD: 1.0,
    }
)
#: FCFS with the very same arrival times: the three streams all book as STANDARD.
ONE_CLASS = (Priority.STANDARD,) * len(CLASSES)


def scenario(
    ordering: OrderingPolicy,
    consult: Duration = EXPONENTIAL,
    priorities: Sequence[Priority] = CLASSES,
    hours: int = HOURS,
) -> Scenario:
    """One doctor, one slot as long as the day, one Poisson walk-in stream per entry of
    ``priorities``. The arrival streams are numbered, not named by priority, so every
    scenario built here sees the same arrival times for a seed (common random numbers)."""
    end = timedelta(hours=hours)
    return Scenario(
        doctors=[
            DoctorPlan(
                id="D1",
                sessions=[
                    Session(start=timedelta(0), end=end, slot_minutes=hours * 60, capacity=10**7)
                ],
                consult=consult,
                arrivals=[
                    Arrivals(per_hour=ARRIVAL_RATE * 60, start=timedelta(0), until=end, priority=p)
                    for p in priorities
                ],
            )
        ],
        policies=Policies(ordering=ordering),
        no_show={},
        cancellation={},
    )


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    """The mean over replications and its standard error."""

    mean: float
    se: float


def measured(values: Sequence[float]) -> Measured:
    """Mean and standard error of independent replications."""
    return Measured(statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values)))


@dataclass(frozen=True)
class Day:
    """One replication: mean wait per class over the measurement window, and the sum of
    every patient's wait (window or not)."""

    means: dict[str, float]
    total_wait: float


def measure(result: SimulationResult, hours: int = HOURS) -> Day:
    """Per-class mean waits of the patients who checked in inside the window."""
    midnight = result.scenario.midnight
    start = midnight + timedelta(hours=hours * WARM_UP)
    stop = midnight + timedelta(hours=hours * (1 - DRAIN))
    waits: dict[str, list[float]] = {}
    every: list[float] = []
    for row in result.records():
        wait, checked_in_at = row["wait"], row["checked_in_at"]
        # Nobody is refused or left unseen: a huge slot, and the doctor stays until done.
        assert row["outcome"] == "seen", row
        assert isinstance(wait, float)
        assert isinstance(checked_in_at, datetime)
        every.append(wait)
        if start <= checked_in_at < stop:
            waits.setdefault(str(row["priority"]), []).append(wait)
    assert not result.refusals()
    return Day(
        means={name: statistics.fmean(values) for name, values in waits.items()},
        total_wait=math.fsum(every),
    )


@functools.cache
def days(
    ordering: OrderingPolicy, consult: Duration, priorities: tuple[Priority, ...]
) -> list[Day]:
    """The 20 replications of a scenario, computed once per test session."""
    return [measure(simulate(scenario(ordering, consult, priorities), seed)) for seed in SEEDS]


def class_waits(runs: Sequence[Day], priority: Priority) -> Measured:
    """The mean wait of one class over the replications, with its standard error."""
    return measured([day.means[priority.name] for day in runs])


def weighted_sum(runs: Sequence[Day], loads: dict[Priority, float]) -> Measured:
    """``sum_k rho_k W_k`` per replication, then its mean and standard error."""
    return measured(
        [math.fsum(load * day.means[p.name] for p, load in loads.items()) for day in runs]
    )


def assert_agrees(label: str, sim: Measured, analytic: float) -> None:
    """The test's criterion: precise enough to mean something, and within K standard errors."""
    assert sim.se / analytic < MAX_RELATIVE_SE, (
        f"{label}: SE {sim.se:.3f} is {sim.se / analytic:.1%} of {analytic:.3f}; too noisy"
    )
    assert abs(sim.mean - analytic) <= K * sim.se, (
        f"{label}: simulated {sim.mean:.3f} +- {sim.se:.3f}, analytic {analytic:.3f}, "
        f"off by {abs(sim.mean - analytic) / sim.se:.1f} SE (tolerance {K} SE)"
    )


LAMBDAS = [ARRIVAL_RATE] * len(CLASSES)
MEANS = [EXPONENTIAL.mean] * len(CLASSES)
SECOND_MOMENTS = [EXPONENTIAL.second_moment] * len(CLASSES)
LOADS = dict.fromkeys(CLASSES, ARRIVAL_RATE * MEAN_CONSULT)
COBHAM = theory.cobham_waits(LAMBDAS, MEANS, SECOND_MOMENTS)
FCFS = theory.fcfs_wait(LAMBDAS, MEANS, SECOND_MOMENTS)
CONSERVED = theory.conservation_law(LAMBDAS, MEANS, SECOND_MOMENTS)


# --------------------------------------------------------------------------- the tests


def test_strict_priority_matches_cobham() -> None:
    """StrictPriority is Cobham's non-preemptive priority queue: per class,
    ``W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k))``.

    Three classes at 0.2 load each (total 0.6), exponential consultations of 10 minutes:
    Cobham gives 7.5, 12.5 and 25.0 minutes, against 15.0 for FCFS, so each class sits far
    from the FCFS value and from its neighbours. 20 x 750 hours (54,000 patients); each
    class within 4 SE (an SE of about 2% of each value here, so within about 8%).
    """
    runs = days(StrictPriority(), EXPONENTIAL, CLASSES)
    for priority, analytic in zip(CLASSES, COBHAM, strict=True):
        assert_agrees(f"StrictPriority {priority.name}", class_waits(runs, priority), analytic)


def test_accumulating_priority_matches_kleinrock() -> None:
    """AccumulatingPriority is Kleinrock's delay-dependent priority (Vol. II, eq. 3.70).

    Same arrivals and load as the Cobham test, rates ``b = 4, 2, 1`` for PAID, FOLLOW_UP,
    STANDARD, read from the policy itself. Kleinrock gives about 10.6, 14.4 and 20.0
    minutes, between FCFS (15.0) and Cobham (7.5, 12.5, 25.0). Each class within 4 SE.

    Power: had the simulation served these classes in strict priority (Cobham's waits), the
    class with the largest gap would fail unless its noise cancelled more than
    ``gap - 4 SE``; asserting the gap is at least ``(4 + 3) SE`` makes that a 3-sigma event
    (probability < 0.0014), so this test tells the two disciplines apart.
    """
    runs = days(ACCUMULATING, EXPONENTIAL, CLASSES)
    rates = [ACCUMULATING.rates[p] for p in CLASSES]
    assert rates == [4.0, 2.0, 1.0]
    kleinrock = theory.kleinrock_waits(LAMBDAS, rates, MEANS, SECOND_MOMENTS)
    gaps: list[float] = []
    for priority, analytic, cobham in zip(CLASSES, kleinrock, COBHAM, strict=True):
        sim = class_waits(runs, priority)
        assert_agrees(f"AccumulatingPriority {priority.name}", sim, analytic)
        gaps.append(abs(analytic - cobham) / sim.se)
    assert max(gaps) >= K + 3, f"Kleinrock vs Cobham only {max(gaps):.1f} SE apart: {gaps}"
    # Kleinrock's waits are a weighted mix of Cobham's and FCFS: more urgent, less wait.
    assert kleinrock[0] < kleinrock[1] < kleinrock[2]
    assert COBHAM[0] < kleinrock[0] < FCFS < kleinrock[2] < COBHAM[2]


def test_aging_obeys_the_conservation_law() -> None:
    """Aging (default: one level per 30 minutes, ceiling FOLLOW_UP) has no closed form, but
    it is work-conserving, non-preemptive and blind to consultation lengths, so Kleinrock's
    conservation law holds: ``sum_k rho_k W_k = rho W0 / (1 - rho)`` (9.0 load-weighted
    minutes here, whatever the discipline).

    Same arrivals and load as the Cobham test; the weighted sum is formed per replication
    and compared within 4 SE. The discipline must also show: a STANDARD patient is lifted
    to the FOLLOW_UP level after 30 minutes, so waits less than under strict priority
    (Cobham's 25.0), but is never lifted above PAID and never overtakes an earlier arrival,
    so waits more than under FCFS (15.0); both by more than 4 SE. PAID patients are above
    the ceiling and are never overtaken, so their wait is Cobham's 7.5.
    """
    runs = days(Aging(), EXPONENTIAL, CLASSES)
    assert_agrees("Aging sum rho_k W_k", weighted_sum(runs, LOADS), CONSERVED)
    standard = class_waits(runs, Priority.STANDARD)
    assert standard.se / FCFS < MAX_RELATIVE_SE
    assert standard.mean < COBHAM[2] - K * standard.se, (standard, COBHAM[2])
    assert standard.mean > FCFS + K * standard.se, (standard, FCFS)
    assert_agrees("Aging PAID", class_waits(runs, Priority.PAID), COBHAM[0])


def test_fixed_consultations_halve_the_exponential_wait() -> None:
    """Pollaczek-Khinchine: ``Wq = lambda E[S^2] / (2 (1 - rho))``, so with the same mean,
    fixed consultations (``E[S^2] = E[S]^2``, M/D/1) wait half as long as exponential
    ones (``E[S^2] = 2 E[S]^2``, M/M/1).

    One class (the three streams all book STANDARD: a Poisson stream of 0.06 a minute),
    load 0.6, so FCFS: M/M/1 15.0 minutes, M/D/1 7.5. Each within 4 SE of ``mg1_wait``.
    The two scenarios see the same arrivals (common random numbers), so the ratio of
    their means is estimated more precisely than either; its SE comes from the usual
    linearisation of a ratio of means, ``sd(d_i - r m_i) / (sqrt(n) mean(m))``, and the
    ratio must be within 4 SE of 0.5 with an SE under 0.03 (6% of 0.5).
    """
    lam = ARRIVAL_RATE * len(CLASSES)
    exponential = days(StrictPriority(), EXPONENTIAL, ONE_CLASS)
    fixed = days(StrictPriority(), FIXED, ONE_CLASS)
    mm1 = theory.mg1_wait(lam, EXPONENTIAL.mean, EXPONENTIAL.second_moment)
    md1 = theory.mg1_wait(lam, FIXED.mean, FIXED.second_moment)
    assert math.isclose(mm1, theory.mm1_wait(lam, 1 / MEAN_CONSULT))
    assert math.isclose(md1, mm1 / 2)
    m = [day.means["STANDARD"] for day in exponential]
    d = [day.means["STANDARD"] for day in fixed]
    assert_agrees("M/M/1", measured(m), mm1)
    assert_agrees("M/D/1", measured(d), md1)
    ratio = statistics.fmean(d) / statistics.fmean(m)
    residuals = [di - ratio * mi for di, mi in zip(d, m, strict=True)]
    se = statistics.stdev(residuals) / (math.sqrt(len(SEEDS)) * statistics.fmean(m))
    assert_agrees("M/D/1 over M/M/1", Measured(ratio, se), 0.5)


def test_strict_priority_and_fcfs_conserve_the_same_work() -> None:
    """The conservation law from both sides: StrictPriority over three classes and FCFS
    over one class of the same total load and arrival times both give
    ``sum_k rho_k W_k = rho W0 / (1 - rho)`` (9.0), each within 4 SE, from the runs of the
    Cobham and M/M/1 tests.

    And on one sample path: with fixed consultations every non-idling discipline sees the
    same arrivals and serves the same amounts of work, so the doctor is busy at the same
    times, patients leave at the same instants, and the total of all waits is the same
    under StrictPriority, AccumulatingPriority, Aging and FCFS, to rounding. This catches a
    doctor who idles while someone waits under one ordering but not another, or an
    ordering that changes who is present or how much work arrives.
    Three seeds of 200 hours (about 720 patients each) suffice: it is an identity.
    """
    strict = weighted_sum(days(StrictPriority(), EXPONENTIAL, CLASSES), LOADS)
    fcfs = weighted_sum(days(StrictPriority(), EXPONENTIAL, ONE_CLASS), {Priority.STANDARD: LOAD})
    assert_agrees("StrictPriority sum rho_k W_k", strict, CONSERVED)
    assert_agrees("FCFS rho W", fcfs, CONSERVED)

    orderings: list[tuple[OrderingPolicy, tuple[Priority, ...]]] = [
        (StrictPriority(), ONE_CLASS),
        (StrictPriority(), CLASSES),
        (ACCUMULATING, CLASSES),
        (Aging(), CLASSES),
    ]
    for seed in (1, 2, 3):
        totals = [
            measure(simulate(scenario(o, FIXED, p, hours=200), seed), hours=200).total_wait
            for o, p in orderings
        ]
        assert totals[0] > 0
        for total in totals[1:]:
            assert math.isclose(total, totals[0], rel_tol=1e-9), (seed, totals)
