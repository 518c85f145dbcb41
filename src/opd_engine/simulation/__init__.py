"""Seeded simulation of OPD days through the real allocator, and its analytic references.

Describe a day as a :class:`Scenario` (doctors, sessions, demand, disruptions, the front
desk's operations, policies),
run it with :func:`simulate` for one seed or :func:`replicate` over many, and analyse the
rows (``records()``, ``events()``, typed as :class:`TokenRecord` and :class:`EventRecord`;
``tidy()`` in long form) or the :class:`Summary`. :func:`compare` runs scenarios over the
same seeds and gives their paired differences with 95% intervals; :func:`sweep` runs a
grid of changes. Every run takes any ``map``-like executor (``concurrent.futures``, Dask,
Ray). :mod:`opd_engine.simulation.theory` holds the queueing formulas the simulation is
validated against.
"""

from ._analysis import Comparison, Sweep, compare, sweep
from ._engine import replicate, simulate
from ._records import (
    OUTCOME_ORDER,
    PRIORITY_ORDER,
    SOURCE_ORDER,
    DifferenceRow,
    EstimateRow,
    EventRecord,
    IdleRecord,
    RefusalRecord,
    TidyRow,
    TokenRecord,
    TokenRow,
    categorise,
)
from ._results import (
    DoctorStats,
    Estimate,
    EstimateStats,
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
    Pause,
    Scenario,
    Session,
)

__all__ = [
    "OUTCOME_ORDER",
    "PRIORITY_ORDER",
    "SOURCE_ORDER",
    "Arrivals",
    "Break",
    "Comparison",
    "DifferenceRow",
    "DoctorPlan",
    "DoctorStats",
    "Duration",
    "Estimate",
    "EstimateRow",
    "EstimateStats",
    "EventRecord",
    "Exponential",
    "Fixed",
    "IdleRecord",
    "LogNormal",
    "Normal",
    "Pause",
    "RefusalRecord",
    "Replication",
    "Scenario",
    "Session",
    "SimulationResult",
    "Summary",
    "Sweep",
    "TidyRow",
    "TokenRecord",
    "TokenRow",
    "WaitStats",
    "categorise",
    "compare",
    "replicate",
    "simulate",
    "sweep",
]
