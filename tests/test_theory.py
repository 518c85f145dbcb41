"""The analytic queueing references: textbook values, limits, identities and validation.

Expected values are hand-computed or recomputed here independently (exact fractions, a
log-space Erlang C, a brute-force binomial sum), never pasted from the module's output.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable
from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opd_engine.errors import InvalidArgumentError
from opd_engine.simulation import theory
from opd_engine.simulation.theory import (
    OverbookingOutcome,
    cobham_waits,
    conservation_law,
    erlang_c,
    fcfs_wait,
    kleinrock_waits,
    mg1_wait,
    mm1_wait,
    mmc_wait,
    overbooking,
    overbooking_table,
    residual_work,
)

Classes = tuple[list[float], list[float], list[float]]


@st.composite
def stable_classes(draw: st.DrawFn, max_classes: int = 5) -> Classes:
    """1..max_classes classes with total load in (0, 0.95) and any service variability."""
    k = draw(st.integers(1, max_classes))
    shares = draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))
    if sum(shares) == 0:
        shares[0] = 1.0
    means = draw(st.lists(st.floats(0.1, 30.0), min_size=k, max_size=k))
    cv2s = draw(st.lists(st.floats(0.0, 4.0), min_size=k, max_size=k))
    load = draw(st.floats(0.01, 0.95))
    total = sum(shares)
    lams = [load * share / total / mean for share, mean in zip(shares, means, strict=True)]
    seconds = [mean * mean * (1 + cv2) for mean, cv2 in zip(means, cv2s, strict=True)]
    return lams, means, seconds


def weighted(lams: list[float], means: list[float], waits: tuple[float, ...]) -> float:
    """``sum_k rho_k W_k``."""
    return math.fsum(lam * mean * w for lam, mean, w in zip(lams, means, waits, strict=True))


def by_hand_fcfs(lams: list[float], means: list[float], seconds: list[float]) -> float:
    """``W0 / (1 - rho)`` written out."""
    w0 = sum(lam * s2 for lam, s2 in zip(lams, seconds, strict=True)) / 2
    return w0 / (1 - sum(lam * m for lam, m in zip(lams, means, strict=True)))


# --------------------------------------------------------------------------- single class


def test_mm1_textbook_value() -> None:
    # rho = 0.5; Wq = rho / (mu - lambda) = 0.5 / 0.5
    assert mm1_wait(0.5, 1.0) == pytest.approx(1.0)
    # lambda = 3/h, mu = 4/h: rho = 3/4, Wq = 0.75 / 1 = 0.75 h
    assert mm1_wait(3, 4) == pytest.approx(0.75)
    assert mm1_wait(0.0, 1.0) == 0.0


@pytest.mark.parametrize(("lam", "mu"), [(0.5, 1.0), (0.1, 0.25), (9.0, 10.0), (0.02, 0.05)])
def test_mg1_with_exponential_service_is_mm1(lam: float, mu: float) -> None:
    assert mg1_wait(lam, 1 / mu, 2 / mu**2) == pytest.approx(mm1_wait(lam, mu), rel=1e-12)


@pytest.mark.parametrize(("lam", "mean"), [(0.5, 1.0), (0.05, 12.0), (0.9, 1.0)])
def test_deterministic_service_halves_the_exponential_wait(lam: float, mean: float) -> None:
    exponential = mg1_wait(lam, mean, 2 * mean**2)
    assert mg1_wait(lam, mean, mean**2) == pytest.approx(exponential / 2, rel=1e-12)


def test_deterministic_second_moment_written_as_a_literal_is_accepted() -> None:
    """0.01 < 0.1 * 0.1 in binary floating point; that is rounding, not an error."""
    assert 0.01 < 0.1 * 0.1
    # M/D/1: Wq = lambda E[S]^2 / (2 (1 - rho)) = 5 * 0.01 / (2 * 0.5)
    assert mg1_wait(5.0, 0.1, 0.01) == pytest.approx(0.05)


# --------------------------------------------------------------------------- several classes


def test_residual_work_by_hand() -> None:
    # (0.2 * 2 + 0.3 * 8) / 2
    assert residual_work([0.2, 0.3], [2.0, 8.0]) == pytest.approx(1.4)


def test_fcfs_with_one_class_is_pollaczek_khinchine() -> None:
    assert fcfs_wait([0.3], [2.0], [10.0]) == pytest.approx(mg1_wait(0.3, 2.0, 10.0))


def test_fcfs_with_mixed_classes_by_hand() -> None:
    # W0 = (0.2 * 2 + 0.1 * 18) / 2 = 1.1; rho = 0.2 * 1 + 0.1 * 3 = 0.5; W = 2.2
    assert fcfs_wait([0.2, 0.1], [1.0, 3.0], [2.0, 18.0]) == pytest.approx(2.2)


@pytest.mark.parametrize(
    ("lam", "mean", "second"), [(0.5, 1.0, 2.0), (0.1, 4.0, 16.0), (0.02, 10.0, 500.0)]
)
def test_cobham_with_one_class_is_pollaczek_khinchine(
    lam: float, mean: float, second: float
) -> None:
    (wait,) = cobham_waits([lam], [mean], [second])
    rho = lam * mean
    assert wait == pytest.approx(lam * second / (2 * (1 - rho)), rel=1e-12)


def test_cobham_two_classes_by_hand() -> None:
    # rho = (0.2, 0.3); W0 = (0.2 * 2 + 0.3 * 2) / 2 = 0.5
    # W_0 = 0.5 / (1 * 0.8) = 0.625; W_1 = 0.5 / (0.8 * 0.5) = 1.25
    assert cobham_waits([0.2, 0.3], [1.0, 1.0], [2.0, 2.0]) == pytest.approx((0.625, 1.25))


def test_cobham_three_classes_by_hand() -> None:
    # rho = (0.1, 0.2, 0.3), sigma = (0.1, 0.3, 0.6); W0 = (0.1*2 + 0.1*8 + 0.3*1) / 2 = 0.65
    waits = cobham_waits([0.1, 0.1, 0.3], [1.0, 2.0, 1.0], [2.0, 8.0, 1.0])
    assert waits == pytest.approx((0.65 / 0.9, 0.65 / (0.9 * 0.7), 0.65 / (0.7 * 0.4)))
    assert waits[0] < waits[1] < waits[2]


def test_conservation_law_by_hand() -> None:
    # rho = 0.5, W0 = 0.5: rho W0 / (1 - rho) = 0.5
    assert conservation_law([0.2, 0.3], [1.0, 1.0], [2.0, 2.0]) == pytest.approx(0.5)


def test_kleinrock_two_classes_by_hand() -> None:
    """Class 0 has rate 2 (rho 0.2), class 1 rate 1 (rho 0.3); W0 / (1 - rho) = 1.

    Smallest rate first: W_1 = 1 / (1 - 0.2 (1 - 1/2)) = 10/9;
    then W_0 = 1 - 0.3 * (10/9) * (1 - 1/2) = 5/6.
    """
    waits = kleinrock_waits([0.2, 0.3], [2.0, 1.0], [1.0, 1.0], [2.0, 2.0])
    assert waits == pytest.approx((5 / 6, 10 / 9), rel=1e-12)


@settings(derandomize=True, database=None)
@given(stable_classes())
def test_cobham_satisfies_the_conservation_law(classes: Classes) -> None:
    lams, means, seconds = classes
    waits = cobham_waits(lams, means, seconds)
    expected = conservation_law(lams, means, seconds)
    assert weighted(lams, means, waits) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert expected == pytest.approx(
        sum(lam * m for lam, m in zip(lams, means, strict=True))
        * by_hand_fcfs(lams, means, seconds),
        rel=1e-9,
        abs=1e-12,
    )


@settings(derandomize=True, database=None)
@given(stable_classes(), st.data())
def test_kleinrock_satisfies_the_conservation_law(classes: Classes, data: st.DataObject) -> None:
    lams, means, seconds = classes
    rates = data.draw(st.lists(st.floats(0.01, 100.0), min_size=len(lams), max_size=len(lams)))
    waits = kleinrock_waits(lams, rates, means, seconds)
    expected = conservation_law(lams, means, seconds)
    assert weighted(lams, means, waits) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert all(w > 0 for w in waits)
    # a larger rate never waits longer
    for i, j in itertools.permutations(range(len(lams)), 2):
        if rates[i] > rates[j]:
            assert waits[i] <= waits[j] * (1 + 1e-9)


@settings(derandomize=True, database=None)
@given(stable_classes(), st.floats(0.01, 100.0))
def test_kleinrock_equal_rates_is_fcfs(classes: Classes, rate: float) -> None:
    lams, means, seconds = classes
    waits = kleinrock_waits(lams, [rate] * len(lams), means, seconds)
    assert waits == pytest.approx([by_hand_fcfs(lams, means, seconds)] * len(lams), rel=1e-12)


def test_kleinrock_tends_to_cobham_as_the_rate_ratio_grows() -> None:
    lams, means, seconds = [0.2, 0.25, 0.3], [1.0, 1.2, 0.8], [2.0, 2.88, 1.28]
    cobham = cobham_waits(lams, means, seconds)
    near = kleinrock_waits(lams, [1e18, 1e9, 1.0], means, seconds)
    assert near == pytest.approx(cobham, rel=1e-6)
    # and the classes really are separated: the gap shrinks as the ratio grows
    mild = kleinrock_waits(lams, [4.0, 2.0, 1.0], means, seconds)
    assert abs(mild[0] - cobham[0]) > abs(near[0] - cobham[0])
    assert mild[0] > cobham[0]
    assert mild[2] < cobham[2]


def test_kleinrock_more_urgent_waits_less() -> None:
    waits = kleinrock_waits([0.2, 0.25, 0.3], [5.0, 2.0, 1.0], [1.0, 1.2, 0.8], [2.0, 2.88, 1.28])
    assert waits[0] < waits[1] < waits[2]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_kleinrock_returns_waits_in_the_callers_order(order: tuple[int, ...]) -> None:
    lams = [0.05, 0.1, 0.15, 0.2]
    rates = [8.0, 3.0, 3.0, 1.0]  # a tie too
    means = [1.5, 1.0, 2.0, 0.5]
    seconds = [4.5, 1.0, 10.0, 0.25]
    base = kleinrock_waits(lams, rates, means, seconds)
    permuted = kleinrock_waits(
        [lams[i] for i in order],
        [rates[i] for i in order],
        [means[i] for i in order],
        [seconds[i] for i in order],
    )
    assert permuted == pytest.approx([base[i] for i in order], rel=1e-12)


# --------------------------------------------------------------------------- M/M/c


def exact_erlang_c(c: int, a: Fraction) -> Fraction:
    """The textbook closed form, in exact arithmetic."""
    top = a**c / math.factorial(c) * Fraction(c) / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def log_erlang_c(c: int, a: float) -> float:
    """The closed form in log space (lgamma and log-sum-exp), for large c."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    log_top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    peak = max([*logs, log_top])
    total = math.fsum(math.exp(x - peak) for x in [*logs, log_top])
    return math.exp(log_top - peak) / total


@pytest.mark.parametrize("a", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_erlang_c_with_one_server_is_rho(a: float) -> None:
    assert erlang_c(1, a) == pytest.approx(a, rel=1e-12, abs=1e-15)


def test_erlang_c_textbook_values() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)


@pytest.mark.parametrize(
    ("c", "a"), [(2, Fraction(3, 2)), (4, Fraction(5, 2)), (7, Fraction(13, 2)), (10, 3)]
)
def test_erlang_c_against_the_exact_closed_form(c: int, a: Fraction | int) -> None:
    assert erlang_c(c, float(a)) == pytest.approx(float(exact_erlang_c(c, Fraction(a))))


@pytest.mark.parametrize(("c", "a"), [(1000, 950.0), (1000, 999.0), (1500, 1400.0), (200, 180.0)])
def test_erlang_c_is_stable_for_many_servers(c: int, a: float) -> None:
    value = erlang_c(c, a)
    assert 0 < value < 1
    assert value == pytest.approx(log_erlang_c(c, a), rel=1e-9)


def test_erlang_c_light_load_on_many_servers_underflows_to_zero() -> None:
    """a = 100 on c = 1500: C ~ a^c / c! ~ 1e-1100, below the smallest float."""
    log10_tail = (1500 * math.log(100.0) - math.lgamma(1501)) / math.log(10)
    assert log10_tail < -1000
    assert erlang_c(1500, 100.0) == 0.0


def test_mmc_with_one_server_is_mm1() -> None:
    for lam, mu in [(0.5, 1.0), (0.1, 0.25), (9.0, 10.0)]:
        assert mmc_wait(lam, mu, 1) == pytest.approx(mm1_wait(lam, mu), rel=1e-12)


def test_mmc_by_hand() -> None:
    # c = 2, a = 1: C = 1/3; Wq = C / (2 mu - lambda) = (1/3) / 1
    assert mmc_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    # c = 3, lambda = 4, mu = 2 (a = 2): C = 4/9; Wq = (4/9) / (6 - 4)
    assert mmc_wait(4.0, 2.0, 3) == pytest.approx(2 / 9)


# --------------------------------------------------------------------------- overbooking


def brute_force(n: int, c: int, p: Fraction) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    """``E[X]``, ``E[overflow]``, ``E[empty]``, ``P[X > C]`` for X ~ Bin(n, 1 - p), exactly."""
    q = 1 - p
    pmf = [math.comb(n, k) * q**k * p ** (n - k) for k in range(n + 1)]
    assert sum(pmf) == 1
    mean = Fraction(sum(k * pmf[k] for k in range(n + 1)))
    overflow = Fraction(sum(max(k - c, 0) * pmf[k] for k in range(n + 1)))
    empty = Fraction(sum(max(c - k, 0) * pmf[k] for k in range(n + 1)))
    above = Fraction(sum(pmf[k] for k in range(n + 1) if k > c))
    return mean, overflow, empty, above


@pytest.mark.parametrize(
    ("n", "c", "p"),
    [
        (12, 10, Fraction(1, 5)),
        (10, 10, Fraction(1, 10)),
        (8, 10, Fraction(1, 4)),
        (30, 20, Fraction(1, 3)),
        (5, 0, Fraction(1, 2)),
        (0, 3, Fraction(1, 5)),
        (60, 50, Fraction(3, 100)),
        (40, 4, Fraction(9, 10)),
    ],
)
def test_overbooking_against_brute_force(n: int, c: int, p: Fraction) -> None:
    outcome = overbooking(n, c, float(p))
    mean, overflow, empty, above = brute_force(n, c, p)
    assert (outcome.booked, outcome.capacity, outcome.no_show_rate) == (n, c, float(p))
    assert outcome.expected_arrivals == pytest.approx(float(mean), rel=1e-12, abs=1e-15)
    assert outcome.expected_overflow == pytest.approx(float(overflow), rel=1e-11, abs=1e-15)
    assert outcome.expected_empty == pytest.approx(float(empty), rel=1e-11, abs=1e-15)
    assert outcome.overflow_probability == pytest.approx(float(above), rel=1e-11, abs=1e-15)


def test_overbooking_by_hand() -> None:
    # N=12, C=10, show-up 0.8: P[X=11] = 12 * 0.8**11 * 0.2, P[X=12] = 0.8**12
    outcome = overbooking(12, 10, 0.2)
    p11, p12 = 12 * 0.8**11 * 0.2, 0.8**12
    assert outcome.overflow_probability == pytest.approx(p11 + p12)
    assert outcome.expected_overflow == pytest.approx(p11 + 2 * p12)
    assert outcome.expected_arrivals == pytest.approx(12 * 0.8)


def test_no_no_shows_and_exact_booking_is_exact() -> None:
    outcome = overbooking(10, 10, 0.0)
    assert outcome.expected_arrivals == 10
    assert outcome.expected_overflow == 0
    assert outcome.expected_empty == 0
    assert outcome.overflow_probability == 0
    over = overbooking(13, 10, 0.0)
    assert (over.expected_overflow, over.expected_empty, over.overflow_probability) == (3, 0, 1)


@settings(derandomize=True, database=None)
@given(st.integers(0, 300), st.integers(0, 300), st.floats(0.0, 0.99))
def test_overbooking_identities(n: int, c: int, p: float) -> None:
    outcome = overbooking(n, c, p)
    assert outcome.expected_arrivals == pytest.approx(n * (1 - p))
    assert outcome.expected_overflow - outcome.expected_empty == pytest.approx(
        outcome.expected_arrivals - c, abs=1e-9 * max(n, c, 1)
    )
    assert 0 <= outcome.overflow_probability <= 1
    assert outcome.expected_overflow >= 0
    assert outcome.expected_empty >= 0
    if n <= c:
        assert outcome.expected_overflow == 0
        assert outcome.overflow_probability == 0


@pytest.mark.parametrize(
    ("capacity", "p", "top"),
    [
        (10, 0.2, 15),  # ceil(12.5) + 2
        (9, 0.25, 14),  # 9 / 0.75 = 12 exactly: ceil(12) + 2, not 15
        (20, 0.0, 22),
        (0, 0.5, 2),
        (30, 0.1, 36),  # 30 / 0.9 = 33.33...: 34 + 2
    ],
)
def test_overbooking_table_default_rows(capacity: int, p: float, top: int) -> None:
    table = overbooking_table(capacity, p)
    assert [row.booked for row in table] == list(range(capacity, top + 1))
    assert all(row.capacity == capacity and row.no_show_rate == p for row in table)


def test_overbooking_table_trends() -> None:
    table = overbooking_table(10, 0.2)
    overflows = [row.expected_overflow for row in table]
    empties = [row.expected_empty for row in table]
    risks = [row.overflow_probability for row in table]
    assert overflows[0] == 0
    assert all(a < b for a, b in itertools.pairwise(overflows))
    assert all(a > b for a, b in itertools.pairwise(empties))
    assert all(a < b for a, b in itertools.pairwise(risks))
    assert table == [overbooking(n, 10, 0.2) for n in range(10, 16)]


def test_overbooking_table_explicit_max() -> None:
    assert [row.booked for row in overbooking_table(5, 0.3, 5)] == [5]
    assert [row.booked for row in overbooking_table(5, 0.3, 9)] == [5, 6, 7, 8, 9]


def test_overbooking_large_booking_is_finite_and_normal_like() -> None:
    """N=10_000, show-up 0.8, C=8_000: X is nearly Normal(8000, 40^2).

    Then E[max(X - C, 0)] ~ sigma * phi(0) = 40 / sqrt(2 pi) ~ 15.96 and P[X > C] ~ 1/2
    (a little less: P[X = C] ~ 0.01 is excluded).
    """
    outcome = overbooking(10_000, 8_000, 0.2)
    fields = attrs.astuple(outcome)
    assert all(math.isfinite(x) for x in fields)
    assert outcome.expected_overflow == pytest.approx(40 / math.sqrt(2 * math.pi), rel=0.01)
    assert outcome.expected_empty == pytest.approx(outcome.expected_overflow, rel=1e-9)
    assert outcome.overflow_probability == pytest.approx(0.495, abs=0.005)


def test_overbooking_large_booking_extreme_rates() -> None:
    rare = overbooking(10_000, 10, 0.9999)  # E[X] = 1
    assert rare.expected_empty == pytest.approx(10 - 1 + rare.expected_overflow, rel=1e-9)
    assert 0 < rare.overflow_probability < 1e-6
    sure = overbooking(10_000, 9_999, 1e-9)  # E[X] = 10_000 - 1e-5
    assert sure.overflow_probability == pytest.approx(1 - 1e-5, rel=1e-6)


def test_outcome_is_a_frozen_keyword_value() -> None:
    outcome = overbooking(12, 10, 0.2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        outcome.booked = 3  # type: ignore[misc]
    assert attrs.evolve(outcome) == outcome
    with pytest.raises(TypeError):
        OverbookingOutcome(12, 10, 0.2, 9.6, 0.3, 0.7, 0.2)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- module contract


def test_all_is_sorted_and_documented() -> None:
    assert theory.__all__ == sorted(theory.__all__)
    for name in theory.__all__:
        obj = getattr(theory, name)
        doc = inspect.getdoc(obj)
        assert doc, name
        if inspect.isfunction(obj):
            assert "O(" in doc, name


# --------------------------------------------------------------------------- validation

NAN, INF = math.nan, math.inf

BAD = [
    pytest.param(
        lambda: mm1_wait(-1.0, 1.0),
        "arrival_rate must be >= 0, got arrival_rate=-1.0",
        id="neg arrival",
    ),
    pytest.param(
        lambda: mm1_wait(0.5, 0.0),
        "service_rate must be > 0, got service_rate=0.0",
        id="zero mu",
    ),
    pytest.param(
        lambda: mm1_wait(0.5, -2),
        "service_rate must be > 0, got service_rate=-2",
        id="neg mu",
    ),
    pytest.param(
        lambda: mm1_wait(True, 2.0),
        "arrival_rate must be a real number, got arrival_rate=True (bool)",
        id="bool",
    ),
    pytest.param(
        lambda: mm1_wait(0.5, "1"),  # type: ignore[arg-type]
        "service_rate must be a real number, got service_rate='1' (str)",
        id="str",
    ),
    pytest.param(
        lambda: mm1_wait(NAN, 1.0),
        "arrival_rate must be finite, got arrival_rate=nan",
        id="nan",
    ),
    pytest.param(
        lambda: mm1_wait(0.5, INF),
        "service_rate must be finite, got service_rate=inf",
        id="inf",
    ),
    pytest.param(
        lambda: mm1_wait(0.5, 10**400),
        "service_rate must be finite",
        id="huge int",
    ),
    pytest.param(
        lambda: mm1_wait(1.2, 1.0),
        "the queue is unstable: rho=1.2 must be < 1",
        id="mm1 unstable",
    ),
    pytest.param(
        lambda: mm1_wait(1.0, 1.0),
        "the queue is unstable: rho=1.0 must be < 1",
        id="mm1 critical",
    ),
    pytest.param(
        lambda: mg1_wait(0.5, -1.0, 2.0),
        "mean_service must be > 0, got mean_service=-1.0",
        id="mg1 mean",
    ),
    pytest.param(
        lambda: mg1_wait(0.5, 1.0, 0.5),
        "second_moment must be >= mean_service**2 = 1.0",
        id="mg1 moment",
    ),
    pytest.param(
        lambda: mg1_wait(0.5, 2.0, 3.0),
        "got second_moment=3.0",
        id="mg1 moment value",
    ),
    pytest.param(
        lambda: mg1_wait(0.5, 1.0, NAN),
        "second_moment must be finite, got second_moment=nan",
        id="mg1 moment nan",
    ),
    pytest.param(
        lambda: mg1_wait(0.6, 2.0, 8.0),
        "the queue is unstable: rho=1.2 must be < 1",
        id="mg1 unstable",
    ),
    pytest.param(
        lambda: cobham_waits([0.1, -0.5], [1, 1], [2, 2]),
        "arrival_rates[1] must be >= 0, got arrival_rates[1]=-0.5",
        id="seq neg",
    ),
    pytest.param(
        lambda: fcfs_wait([0.1, 0.2], [1, True], [2, 2]),
        "mean_services[1] must be a real number, got mean_services[1]=True (bool)",
        id="seq bool",
    ),
    pytest.param(
        lambda: conservation_law([NAN], [1], [2]),
        "arrival_rates[0] must be finite, got arrival_rates[0]=nan",
        id="seq nan",
    ),
    pytest.param(
        lambda: cobham_waits([0.1], [0.0], [2]),
        "mean_services[0] must be > 0, got mean_services[0]=0.0",
        id="seq mean",
    ),
    pytest.param(
        lambda: cobham_waits([0.1, 0.1], [1, 2], [2, 3.0]),
        "second_moments[1] must be >= mean_services[1]**2 = 4.0",
        id="seq moment",
    ),
    pytest.param(
        lambda: cobham_waits([0.1, 0.2], [1.0], [2, 2]),
        "mean_services must have the same length as arrival_rates (2), got len(mean_services)=1",
        id="seq lengths",
    ),
    pytest.param(
        lambda: fcfs_wait([0.1], [1.0], [2, 2]),
        "second_moments must have the same length as arrival_rates (1), got len(second_moments)=2",
        id="seq lengths 2",
    ),
    pytest.param(
        lambda: cobham_waits([], [], []),
        "arrival_rates must be non-empty, got arrival_rates=[]",
        id="seq empty",
    ),
    pytest.param(
        lambda: cobham_waits(0.5, [1], [2]),  # type: ignore[arg-type]
        "arrival_rates must be a sequence of numbers, got arrival_rates=0.5 (float)",
        id="not seq",
    ),
    pytest.param(
        lambda: fcfs_wait("12", [1, 1], [2, 2]),  # type: ignore[arg-type]
        "arrival_rates must be a sequence of numbers, got arrival_rates='12' (str)",
        id="str seq",
    ),
    pytest.param(
        lambda: cobham_waits([0.6, 0.6], [1, 1], [2, 2]),
        "the queue is unstable: rho=1.2 must be < 1",
        id="seq unstable",
    ),
    pytest.param(
        lambda: fcfs_wait([0.5, 0.5], [1, 1], [2, 2]),
        "the queue is unstable: rho=1.0 must be < 1",
        id="fcfs unstable",
    ),
    pytest.param(
        lambda: conservation_law([0.6, 0.6], [1, 1], [2, 2]),
        "the queue is unstable: rho=1.2",
        id="law unstable",
    ),
    pytest.param(
        lambda: residual_work([0.1, 0.2], [2.0, 0.0]),
        "second_moments[1] must be > 0, got second_moments[1]=0.0",
        id="w0 moment",
    ),
    pytest.param(
        lambda: residual_work([-0.1], [2.0]),
        "arrival_rates[0] must be >= 0, got arrival_rates[0]=-0.1",
        id="w0 rate",
    ),
    pytest.param(
        lambda: residual_work([0.1], [2.0, 2.0]),
        "second_moments must have the same length as arrival_rates (1), got len(second_moments)=2",
        id="w0 lengths",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.1, 0.2], [1.0, 0.0], [1, 1], [2, 2]),
        "rates[1] must be > 0, got rates[1]=0.0",
        id="kl zero rate",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.1, 0.2], [-3, 1.0], [1, 1], [2, 2]),
        "rates[0] must be > 0, got rates[0]=-3",
        id="kl neg rate",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.1], [INF], [1], [2]),
        "rates[0] must be finite, got rates[0]=inf",
        id="kl inf rate",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.1, 0.2], [1.0], [1, 1], [2, 2]),
        "rates must have the same length as arrival_rates (2), got len(rates)=1",
        id="kl lengths",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.6, 0.6], [2, 1], [1, 1], [2, 2]),
        "the queue is unstable: rho=1.2 must be < 1",
        id="kl unstable",
    ),
    pytest.param(
        lambda: kleinrock_waits([0.1, -0.5], [2, 1], [1, 1], [2, 2]),
        "arrival_rates[1] must be >= 0, got arrival_rates[1]=-0.5",
        id="kl arrival",
    ),
    pytest.param(
        lambda: erlang_c(0, 0.5),
        "servers must be >= 1, got servers=0",
        id="c zero",
    ),
    pytest.param(
        lambda: erlang_c(2.0, 0.5),  # type: ignore[arg-type]
        "servers must be an int, got servers=2.0 (float)",
        id="c float",
    ),
    pytest.param(
        lambda: erlang_c(True, 0.5),
        "servers must be an int, got servers=True (bool)",
        id="c bool",
    ),
    pytest.param(
        lambda: erlang_c(2, -1.0),
        "offered_load must be >= 0, got offered_load=-1.0",
        id="a neg",
    ),
    pytest.param(
        lambda: erlang_c(2, NAN),
        "offered_load must be finite, got offered_load=nan",
        id="a nan",
    ),
    pytest.param(
        lambda: erlang_c(2, 3.0),
        "the queue is unstable: rho=1.5 must be < 1 "
        "(rho = offered_load / servers, got offered_load=3.0, servers=2)",
        id="erlang unstable",
    ),
    pytest.param(
        lambda: erlang_c(2, 2.0),
        "the queue is unstable: rho=1.0 must be < 1",
        id="erlang critical",
    ),
    pytest.param(
        lambda: mmc_wait(3.0, 1.0, 2),
        "the queue is unstable: rho=1.5 must be < 1",
        id="mmc unstable",
    ),
    pytest.param(
        lambda: mmc_wait(0.5, 1.0, 0),
        "servers must be >= 1, got servers=0",
        id="mmc servers",
    ),
    pytest.param(
        lambda: mmc_wait(0.5, 0.0, 2),
        "service_rate must be > 0, got service_rate=0.0",
        id="mmc mu",
    ),
    pytest.param(
        lambda: overbooking(-1, 10, 0.1),
        "booked must be >= 0, got booked=-1",
        id="booked neg",
    ),
    pytest.param(
        lambda: overbooking(1.5, 10, 0.1),  # type: ignore[arg-type]
        "booked must be an int, got booked=1.5 (float)",
        id="booked float",
    ),
    pytest.param(
        lambda: overbooking(5, -1, 0.1),
        "capacity must be >= 0, got capacity=-1",
        id="capacity neg",
    ),
    pytest.param(
        lambda: overbooking(5, 5, 1.0),
        "no_show_rate must be in [0, 1), got no_show_rate=1.0",
        id="p one",
    ),
    pytest.param(
        lambda: overbooking(5, 5, -0.1),
        "no_show_rate must be in [0, 1), got no_show_rate=-0.1",
        id="p neg",
    ),
    pytest.param(
        lambda: overbooking(5, 5, NAN),
        "no_show_rate must be finite, got no_show_rate=nan",
        id="p nan",
    ),
    pytest.param(
        lambda: overbooking(5, 5, False),
        "no_show_rate must be a real number, got no_show_rate=False (bool)",
        id="p bool",
    ),
    pytest.param(
        lambda: overbooking_table(-2, 0.1),
        "capacity must be >= 0, got capacity=-2",
        id="table capacity",
    ),
    pytest.param(
        lambda: overbooking_table(10, 1.5),
        "no_show_rate must be in [0, 1), got no_show_rate=1.5",
        id="table p",
    ),
    pytest.param(
        lambda: overbooking_table(10, 0.2, 5),
        "max_booked must be >= capacity=10, got max_booked=5",
        id="table max",
    ),
    pytest.param(
        lambda: overbooking_table(10, 0.2, 12.0),  # type: ignore[arg-type]
        "max_booked must be an int, got max_booked=12.0 (float)",
        id="table max type",
    ),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        call()


def test_invalid_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="arrival_rate"):
        mm1_wait(-1.0, 1.0)
