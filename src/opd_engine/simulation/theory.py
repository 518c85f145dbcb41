"""Analytic queueing-theory references that a simulated OPD day is validated against.

A simulation of an outpatient clinic is only trustworthy if, in the cases where theory has
a closed form, it reproduces the textbook numbers. This module gives those numbers as pure
functions (stdlib :mod:`math` only) and one small frozen value:

* :func:`mm1_wait`: M/M/1 FCFS mean wait in queue, ``Wq = rho / (mu - lambda)``.
* :func:`mg1_wait`: Pollaczek-Khinchine (Pollaczek 1930, Khinchine 1932),
  ``Wq = lambda E[S^2] / (2 (1 - rho))``.
* :func:`residual_work`: mean residual service seen by an arrival,
  ``W0 = sum_i lambda_i E[S_i^2] / 2``.
* :func:`fcfs_wait`: M/G/1 FCFS with mixed classes, ``W0 / (1 - rho)``.
* :func:`cobham_waits`: non-preemptive priority M/G/1 (Cobham 1954),
  ``W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k))``, ``sigma_k = sum_{i<=k} rho_i``.
* :func:`kleinrock_waits`: delay-dependent ("accumulating") priority M/G/1
  (Kleinrock 1964; Kleinrock 1976, *Queueing Systems* Vol. II, eq. 3.70).
* :func:`conservation_law`: Kleinrock's (1965) conservation law for work-conserving
  non-preemptive disciplines, ``sum_k rho_k W_k = rho W0 / (1 - rho)``.
* :func:`erlang_c`, :func:`mmc_wait`: M/M/c delay probability and mean wait (Erlang 1917).
* :func:`overbooking`, :func:`overbooking_table`: binomial show-ups against a fixed capacity
  (the model of LaGanga & Lawrence 2007), as :class:`OverbookingOutcome` values.

Conventions: rates are per unit time and times are in the same unit (the library uses
minutes, so rates per minute and times in minutes; any consistent unit works). Waits are
waits *in queue*, excluding service. Classes are indexed in priority order, index 0 the
**most** urgent, matching the library where a lower priority value is more urgent.

Every bad input raises :class:`~opd_engine.errors.InvalidArgumentError` naming the argument
and the value, in the shape ``arrival_rate must be >= 0, got arrival_rate=-1.0``; an
overloaded system raises it with ``the queue is unstable: rho=1.2 must be < 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import final

import attrs

from opd_engine._check import check_int
from opd_engine.errors import InvalidArgumentError

__all__ = [
    "OverbookingOutcome",
    "cobham_waits",
    "conservation_law",
    "erlang_c",
    "fcfs_wait",
    "kleinrock_waits",
    "mg1_wait",
    "mm1_wait",
    "mmc_wait",
    "overbooking",
    "overbooking_table",
    "residual_work",
]

# A second moment this close below mean**2 is rounding, not an impossible distribution:
# deterministic service written as ``0.01`` against a mean of ``0.1`` must be accepted.
_MOMENT_TOLERANCE = 1e-12


# --------------------------------------------------------------------------- validation


def _real(name: str, value: object) -> float:
    """A finite ``int`` or ``float`` (not ``bool``), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(
            f"{name} must be a real number, got {name}={value!r} ({type(value).__name__})"
        )
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise InvalidArgumentError(f"{name} must be finite, got {name}={value!r}")
    return result


def _at_least_zero(name: str, value: object) -> float:
    result = _real(name, value)
    if result < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {name}={value!r}")
    return result


def _positive(name: str, value: object) -> float:
    result = _real(name, value)
    if result <= 0:
        raise InvalidArgumentError(f"{name} must be > 0, got {name}={value!r}")
    return result


def _second_moment(name: str, value: object, mean: float, mean_name: str) -> float:
    """``E[S^2]``: positive and, by Jensen, at least ``E[S]^2`` (up to rounding)."""
    result = _positive(name, value)
    if result < mean * mean * (1 - _MOMENT_TOLERANCE):
        raise InvalidArgumentError(
            f"{name} must be >= {mean_name}**2 = {mean * mean!r} (no distribution has "
            f"E[S^2] < E[S]^2), got {name}={value!r}"
        )
    return result


def _sequence(name: str, value: object, length_of: tuple[str, int] | None) -> Sequence[object]:
    """A non-empty sequence (not a string), of the same length as ``length_of`` if given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgumentError(
            f"{name} must be a sequence of numbers, got {name}={value!r} ({type(value).__name__})"
        )
    if len(value) == 0:
        raise InvalidArgumentError(f"{name} must be non-empty, got {name}={value!r}")
    if length_of is not None and len(value) != length_of[1]:
        other, length = length_of
        raise InvalidArgumentError(
            f"{name} must have the same length as {other} ({length}), got len({name})={len(value)}"
        )
    return value


def _classes(
    arrival_rates: object, mean_services: object, second_moments: object
) -> tuple[list[float], list[float], list[float]]:
    """Validated per-class ``lambda_i``, ``E[S_i]`` and ``E[S_i^2]``."""
    rates = _sequence("arrival_rates", arrival_rates, None)
    means = _sequence("mean_services", mean_services, ("arrival_rates", len(rates)))
    seconds = _sequence("second_moments", second_moments, ("arrival_rates", len(rates)))
    lams = [_at_least_zero(f"arrival_rates[{i}]", x) for i, x in enumerate(rates)]
    ess = [_positive(f"mean_services[{i}]", x) for i, x in enumerate(means)]
    ess2 = [
        _second_moment(f"second_moments[{i}]", x, ess[i], f"mean_services[{i}]")
        for i, x in enumerate(seconds)
    ]
    return lams, ess, ess2


def _stable(rho: float, definition: str) -> float:
    """``rho`` if the queue is stable (``rho < 1``)."""
    if not rho < 1:
        raise InvalidArgumentError(
            f"the queue is unstable: rho={rho!r} must be < 1 (rho = {definition})"
        )
    return rho


def _load(lams: Sequence[float], ess: Sequence[float]) -> float:
    """The total load ``rho = sum_i lambda_i E[S_i]``, which must be < 1."""
    rho = math.fsum(lam * s for lam, s in zip(lams, ess, strict=True))
    return _stable(rho, "sum of arrival_rates[i] * mean_services[i]")


def _w0(lams: Sequence[float], ess2: Sequence[float]) -> float:
    return math.fsum(lam * s2 for lam, s2 in zip(lams, ess2, strict=True)) / 2


# --------------------------------------------------------------------------- single class


def mm1_wait(arrival_rate: float, service_rate: float) -> float:
    """M/M/1 FCFS mean wait in queue: ``Wq = rho / (mu - lambda)``, ``rho = lambda / mu``.

    Source: the classical M/M/1 result (Erlang 1909; Kendall 1953), e.g. Kleinrock 1975,
    *Queueing Systems* Vol. I, ch. 3.

    Units: ``arrival_rate`` (lambda) and ``service_rate`` (mu) per unit time (per minute
    in the library); the wait is in that time unit (minutes). Needs ``lambda < mu``.
    O(1).
    """
    lam = _at_least_zero("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    rho = _stable(lam / mu, "arrival_rate / service_rate")
    return rho / (mu - lam)


def mg1_wait(arrival_rate: float, mean_service: float, second_moment: float) -> float:
    """M/G/1 FCFS mean wait in queue: ``Wq = lambda E[S^2] / (2 (1 - rho))``.

    This is the Pollaczek-Khinchine mean-value formula (Pollaczek 1930; Khinchine 1932),
    with ``rho = lambda E[S]``. Exponential service (``E[S^2] = 2 E[S]^2``) gives
    :func:`mm1_wait`; deterministic service (``E[S^2] = E[S]^2``) gives half of it.

    Units: ``arrival_rate`` per unit time (per minute), ``mean_service`` in time units
    (minutes), ``second_moment`` in squared time units (minutes^2); the wait is in time
    units. Needs ``rho < 1`` and ``second_moment >= mean_service**2``. O(1).
    """
    lam = _at_least_zero("arrival_rate", arrival_rate)
    es = _positive("mean_service", mean_service)
    es2 = _second_moment("second_moment", second_moment, es, "mean_service")
    rho = _stable(lam * es, "arrival_rate * mean_service")
    return lam * es2 / (2 * (1 - rho))


# --------------------------------------------------------------------------- several classes


def residual_work(arrival_rates: Sequence[float], second_moments: Sequence[float]) -> float:
    """Mean residual service seen by an arrival: ``W0 = sum_i lambda_i E[S_i^2] / 2``.

    By PASTA a Poisson arrival finds the server busy with class ``i`` with probability
    ``rho_i`` and the mean remaining service is then ``E[S_i^2] / (2 E[S_i])``, hence
    ``W0`` (Cobham 1954; Kleinrock 1976, *Queueing Systems* Vol. II, ch. 3). It is the
    numerator of every M/G/1 priority formula here; no stability is required.

    Units: rates per unit time (per minute), second moments in squared time units
    (minutes^2); ``W0`` is in time units (minutes). O(k) in the number of classes.
    """
    rates = _sequence("arrival_rates", arrival_rates, None)
    seconds = _sequence("second_moments", second_moments, ("arrival_rates", len(rates)))
    lams = [_at_least_zero(f"arrival_rates[{i}]", x) for i, x in enumerate(rates)]
    ess2 = [_positive(f"second_moments[{i}]", x) for i, x in enumerate(seconds)]
    return _w0(lams, ess2)


def fcfs_wait(
    arrival_rates: Sequence[float],
    mean_services: Sequence[float],
    second_moments: Sequence[float],
) -> float:
    """M/G/1 FCFS mean wait in queue with mixed classes: ``W0 / (1 - rho)``.

    ``W0`` is :func:`residual_work` and ``rho = sum_i lambda_i E[S_i]``; every class waits
    the same. This is Pollaczek-Khinchine (Pollaczek 1930; Khinchine 1932) for the mixture
    service distribution.

    Units: rates per unit time (per minute), ``mean_services`` in time units (minutes),
    ``second_moments`` in squared time units; the wait is in time units. Needs ``rho < 1``.
    O(k) in the number of classes.
    """
    lams, ess, ess2 = _classes(arrival_rates, mean_services, second_moments)
    rho = _load(lams, ess)
    return _w0(lams, ess2) / (1 - rho)


def conservation_law(
    arrival_rates: Sequence[float],
    mean_services: Sequence[float],
    second_moments: Sequence[float],
) -> float:
    """The right-hand side of Kleinrock's conservation law: ``rho W0 / (1 - rho)``.

    For every work-conserving, non-preemptive discipline whose choice does not use the
    service times (FCFS, Cobham's priorities, Kleinrock's accumulating priority, ...), the
    per-class mean waits ``W_k`` satisfy ``sum_k rho_k W_k = rho W0 / (1 - rho)``
    (Kleinrock 1965, "A conservation law for a wide class of queueing disciplines",
    *Naval Research Logistics Quarterly* 12; Kleinrock 1976, Vol. II, ch. 3). Check a
    discipline's waits with ``sum(rho_k * W_k) == conservation_law(...)``.

    Units: as :func:`fcfs_wait`; the result is in time units (load-weighted minutes).
    Needs ``rho < 1``. O(k) in the number of classes.
    """
    lams, ess, ess2 = _classes(arrival_rates, mean_services, second_moments)
    rho = _load(lams, ess)
    return rho * _w0(lams, ess2) / (1 - rho)


def cobham_waits(
    arrival_rates: Sequence[float],
    mean_services: Sequence[float],
    second_moments: Sequence[float],
) -> tuple[float, ...]:
    """Non-preemptive priority M/G/1 mean waits in queue, one per class.

    ``W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k))`` with ``sigma_k = sum_{i<=k} rho_i``,
    ``sigma_{-1} = 0``, ``rho_i = lambda_i E[S_i]`` and ``W0`` = :func:`residual_work`.
    Class 0 is the **most** urgent (served first, FCFS within a class), as in the library
    where a lower priority value is more urgent. Source: Cobham 1954, "Priority assignment
    in waiting line problems", *Operations Research* 2; Kleinrock 1976, Vol. II, ch. 3.

    Units: rates per unit time (per minute), ``mean_services`` in time units (minutes),
    ``second_moments`` in squared time units; waits are in time units. Needs total
    ``rho < 1``. O(k) in the number of classes.
    """
    lams, ess, ess2 = _classes(arrival_rates, mean_services, second_moments)
    _load(lams, ess)
    w0 = _w0(lams, ess2)
    waits: list[float] = []
    sigma_before = 0.0
    for lam, es in zip(lams, ess, strict=True):
        sigma = sigma_before + lam * es
        waits.append(w0 / ((1 - sigma_before) * (1 - sigma)))
        sigma_before = sigma
    return tuple(waits)


def kleinrock_waits(
    arrival_rates: Sequence[float],
    rates: Sequence[float],
    mean_services: Sequence[float],
    second_moments: Sequence[float],
) -> tuple[float, ...]:
    """Delay-dependent ("accumulating") priority M/G/1 mean waits in queue, one per class.

    A customer of class ``p`` that has waited ``t`` holds priority ``b_p t``; when the
    server frees, the waiting customer with the most is served (non-preemptive). Relabel
    the classes so that ``b_1 <= b_2 <= ... <= b_P``; then, with ``rho_i = lambda_i E[S_i]``
    and ``W0`` = :func:`residual_work`::

        W_p = [ W0 / (1 - rho) - sum_{i=1}^{p-1} rho_i W_i (1 - b_i / b_p) ]
              / [ 1 - sum_{i=p+1}^{P} rho_i (1 - b_p / b_i) ]

    computed recursively from the class with the smallest rate. Source: Kleinrock 1964,
    "A delay-dependent queue discipline", *Naval Research Logistics Quarterly* 11;
    Kleinrock 1976, *Queueing Systems* Vol. II, eq. 3.70.

    ``rates`` are the ``b_p``, given in the caller's order (usually the most urgent class
    first with the largest rate); the waits come back in that same order. Equal rates give
    every class the FCFS wait ``W0 / (1 - rho)``; as the ratio between rates grows without
    bound the waits tend to :func:`cobham_waits` for the classes ordered by decreasing rate.
    The waits satisfy :func:`conservation_law`.

    Units: ``arrival_rates`` per unit time (per minute), ``rates`` in priority per unit
    time waited (any positive scale: only ratios matter), ``mean_services`` in time units,
    ``second_moments`` in squared time units; waits are in time units. Needs ``rho < 1``
    and every rate > 0. O(k^2) in the number of classes.
    """
    lams, ess, ess2 = _classes(arrival_rates, mean_services, second_moments)
    given = _sequence("rates", rates, ("arrival_rates", len(lams)))
    bs = [_positive(f"rates[{i}]", x) for i, x in enumerate(given)]
    rho = _load(lams, ess)
    fcfs = _w0(lams, ess2) / (1 - rho)
    rhos = [lam * es for lam, es in zip(lams, ess, strict=True)]
    order = sorted(range(len(bs)), key=lambda i: bs[i])  # stable: ties keep caller order
    waits = [0.0] * len(bs)
    for position, p in enumerate(order):
        b_p = bs[p]
        lower = math.fsum(rhos[i] * waits[i] * (1 - bs[i] / b_p) for i in order[:position])
        higher = math.fsum(rhos[i] * (1 - b_p / bs[i]) for i in order[position + 1 :])
        waits[p] = (fcfs - lower) / (1 - higher)
    return tuple(waits)


# --------------------------------------------------------------------------- M/M/c


def erlang_c(servers: int, offered_load: float) -> float:
    """M/M/c probability that an arrival waits: Erlang's C formula ``C(c, a)``.

    With ``a = lambda / mu`` (offered load, in erlangs) and ``c`` servers,
    ``C(c, a) = c B(c, a) / (c - a (1 - B(c, a)))`` where ``B`` is Erlang's B (loss)
    formula, computed by the stable recursion ``B(0) = 1``,
    ``B(k) = a B(k-1) / (k + a B(k-1))`` (Erlang 1917; recursion e.g. Jagerman 1974,
    "Some properties of the Erlang loss function", *Bell System Technical Journal* 53).
    No factorials or powers are formed, so it works for thousands of servers.

    Units: ``offered_load`` is dimensionless (arrival rate times mean service time).
    Needs ``a < c``. O(c) in the number of servers.
    """
    c = check_int("servers", servers, minimum=1)
    a = _at_least_zero("offered_load", offered_load)
    if not a < c:
        raise InvalidArgumentError(
            f"the queue is unstable: rho={a / c!r} must be < 1 (rho = offered_load / servers, "
            f"got offered_load={offered_load!r}, servers={servers!r})"
        )
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1 - b))


def mmc_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """M/M/c FCFS mean wait in queue: ``Wq = C(c, a) / (c mu - lambda)``, ``a = lambda / mu``.

    ``C`` is :func:`erlang_c` (Erlang 1917; e.g. Kleinrock 1975, *Queueing Systems*
    Vol. I, ch. 3). With ``c = 1`` it is :func:`mm1_wait`.

    Units: ``arrival_rate`` and ``service_rate`` (per server) per unit time (per minute);
    the wait is in time units (minutes). Needs ``lambda < c mu``. O(c) in the number of
    servers.
    """
    lam = _at_least_zero("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    c = check_int("servers", servers, minimum=1)
    _stable(lam / (c * mu), "arrival_rate / (servers * service_rate)")
    return erlang_c(c, lam / mu) / (c * mu - lam)


# --------------------------------------------------------------------------- overbooking


@final
@attrs.frozen(kw_only=True)
class OverbookingOutcome:
    """What booking ``booked`` patients into ``capacity`` places yields on average.

    Each booked patient shows up independently with probability ``1 - no_show_rate``, so
    the arrivals ``X`` are Binomial(``booked``, ``1 - no_show_rate``).

    Attributes:
        booked: patients booked, ``N``.
        capacity: places the session can see, ``C``.
        no_show_rate: probability ``p`` that a booked patient does not come.
        expected_arrivals: ``E[X] = N (1 - p)``.
        expected_overflow: ``E[max(X - C, 0)]``, patients beyond capacity.
        expected_empty: ``E[max(C - X, 0)]``, places left unused.
        overflow_probability: ``P[X > C]``.

    ``expected_overflow - expected_empty == expected_arrivals - capacity`` (up to rounding).
    """

    booked: int
    capacity: int
    no_show_rate: float
    expected_arrivals: float
    expected_overflow: float
    expected_empty: float
    overflow_probability: float


def _binomial_pmf(n: int, q: float) -> list[float]:
    """The Binomial(``n``, ``q``) pmf for ``0 < q <= 1``, by ratios out from the mode.

    Weights start at 1 at the mode (the largest term) and shrink outwards through the
    ratio ``pmf(k+1) / pmf(k) = (n - k) / (k + 1) * q / (1 - q)``, so nothing overflows
    and far tails underflow harmlessly to 0; normalising by their sum makes the total 1.
    O(n).
    """
    if q >= 1.0:
        return [0.0] * n + [1.0]
    odds = q / (1 - q)
    mode = min(n, math.floor((n + 1) * q))
    weights = [0.0] * (n + 1)
    weights[mode] = 1.0
    for k in range(mode, n):
        weights[k + 1] = weights[k] * (n - k) / (k + 1) * odds
    for k in range(mode, 0, -1):
        weights[k - 1] = weights[k] * k / (n - k + 1) / odds
    total = math.fsum(weights)
    return [w / total for w in weights]


def _outcome(booked: int, capacity: int, no_show_rate: float) -> OverbookingOutcome:
    pmf = _binomial_pmf(booked, 1 - no_show_rate)
    above = range(capacity + 1, booked + 1)
    below = range(min(capacity, booked + 1))
    return OverbookingOutcome(
        booked=booked,
        capacity=capacity,
        no_show_rate=no_show_rate,
        expected_arrivals=booked * (1 - no_show_rate),
        expected_overflow=math.fsum((k - capacity) * pmf[k] for k in above),
        expected_empty=math.fsum((capacity - k) * pmf[k] for k in below),
        overflow_probability=min(1.0, math.fsum(pmf[k] for k in above)),
    )


def _no_show_rate(value: object) -> float:
    p = _real("no_show_rate", value)
    if not 0 <= p < 1:
        raise InvalidArgumentError(f"no_show_rate must be in [0, 1), got no_show_rate={value!r}")
    return p


def overbooking(booked: int, capacity: int, no_show_rate: float) -> OverbookingOutcome:
    """Expected overflow and idle capacity when ``booked`` patients share ``capacity`` places.

    Arrivals ``X ~ Binomial(N, 1 - p)`` (independent no-shows with probability ``p``);
    returns ``E[X] = N (1 - p)``, ``E[max(X - C, 0)] = sum_{k > C} (k - C) P[X = k]``,
    ``E[max(C - X, 0)] = sum_{k < C} (C - k) P[X = k]`` and ``P[X > C]``, as exact sums
    over the pmf (computed stably by ratios from the mode; fine for ``N`` in the tens of
    thousands). Source: the binomial show-up model of clinic overbooking, e.g. LaGanga &
    Lawrence 2007, "Clinic overbooking to improve patient access and increase provider
    productivity", *Decision Sciences* 38.

    Units: counts of patients and places; ``no_show_rate`` is a probability in ``[0, 1)``.
    O(booked).
    """
    n = check_int("booked", booked, minimum=0)
    c = check_int("capacity", capacity, minimum=0)
    p = _no_show_rate(no_show_rate)
    return _outcome(n, c, p)


def overbooking_table(
    capacity: int, no_show_rate: float, max_booked: int | None = None
) -> list[OverbookingOutcome]:
    """:func:`overbooking` for every ``booked`` from ``capacity`` to ``max_booked``.

    ``max_booked`` defaults to ``ceil(capacity / (1 - no_show_rate)) + 2``: a little past
    the booking level whose expected arrivals fill the capacity (computed exactly from the
    float's binary value, so an exact quotient is not bumped up by rounding). Rows are in
    increasing ``booked``; overflow grows and idle capacity shrinks down the table. Source
    and units as :func:`overbooking`.

    O(R * max_booked) for ``R = max_booked - capacity + 1`` rows.
    """
    c = check_int("capacity", capacity, minimum=0)
    p = _no_show_rate(no_show_rate)
    if max_booked is None:
        top = math.ceil(Fraction(c) / (1 - Fraction(p))) + 2
    else:
        top = check_int("max_booked", max_booked)
        if top < c:
            raise InvalidArgumentError(
                f"max_booked must be >= capacity={c}, got max_booked={max_booked!r}"
            )
    return [_outcome(n, c, p) for n in range(c, top + 1)]
