"""Seeded simulation of OPD days through the real allocator, and its analytic references.

Describe a day as a :class:`Scenario` (doctors, sessions, demand, disruptions, the front
desk's operations, policies),
run it with :func:`simulate` for one seed or :func:`replicate` over many, and analyse the
rows (``records()``, ``events()``) or the :class:`Summary`. :mod:`opd_engine.simulation.theory`
holds the queueing formulas the simulation is validated against.
"""

from ._engine import replicate, simulate
from ._results import (
    DoctorStats,
    Estimate,
    Replication,
    SimulationResult,
    Summary,
    WaitStats,
)
from ._scenario import (
    Arrivals,
    Break,
    DoctorPlan,
    Duration,
    Exponential,
    Fixed,
    LogNormal,
    Normal,
    Scenario,
    Session,
)

__all__ = [
    "Arrivals",
    "Break",
    "DoctorPlan",
    "DoctorStats",
    "Duration",
    "Estimate",
    "Exponential",
    "Fixed",
    "LogNormal",
    "Normal",
    "Replication",
    "Scenario",
    "Session",
    "SimulationResult",
    "Summary",
    "WaitStats",
    "replicate",
    "simulate",
]
