"""The HTTP benchmark's quick mode (``tests/benchmarks/bench_http.py``): the in-memory app
and one worker on PostgreSQL, two seconds of the standard mix each.

It checks that the benchmark measures what it says (every request counted once, by
endpoint and status, CPU read for the app and the database), and that under eight
concurrent clients the recipe answers every request of the mix with one of the statuses
its contract names: never a server error, never a dropped connection.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_http.py"


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("opd_bench_http", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = load_bench()
measure: Callable[..., Any] = bench.measure
CONFIGS: dict[str, Any] = {config.name: config for config in bench.CONFIGS}

# What each endpoint may answer under the mix: a booking of a new patient, the check-in of
# one's own ONLINE token, a call (204: nobody present), the cancel of one's latest token
# (409: called meanwhile). A 409 on book or check-in would be the day ending mid-run.
ALLOWED = {
    "book": {"201", "409"},
    "check-in": {"200", "409"},
    "call-next": {"200", "204"},
    "cancel": {"200", "409"},
}
SUCCESS = {"book": "201", "check-in": "200", "call-next": "200", "cancel": "200"}
SECONDS = 2.0


@pytest.mark.parametrize("name", ["memory-1", "postgres-1"])
def test_the_standard_mix_gets_only_expected_answers(
    name: str, request: pytest.FixtureRequest
) -> None:
    config = CONFIGS[name]
    dsn = request.getfixturevalue("postgres_dsn") if config.backend == "postgres" else None
    result = asdict(measure(config, seconds=SECONDS, warmup=0.5, clients=8, postgres=dsn))

    assert result["config"] == name
    assert result["workers"] == 1
    assert result["clients"] == 8
    assert SECONDS <= result["seconds"] < SECONDS + 1
    assert result["requests"] > 0
    assert result["requests_per_second"] == pytest.approx(result["requests"] / result["seconds"])

    endpoints = result["endpoints"]
    assert list(endpoints) == ["book", "check-in", "call-next", "cancel"]
    for endpoint, stats in endpoints.items():
        assert set(stats["statuses"]) <= ALLOWED[endpoint], (endpoint, stats["statuses"])
        assert stats["statuses"].get(SUCCESS[endpoint], 0) > 0, (endpoint, stats["statuses"])
        assert sum(stats["statuses"].values()) == stats["requests"]
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
    assert sum(stats["requests"] for stats in endpoints.values()) == result["requests"]
    # The mix: bookings are the most common request, cancellations the least.
    counts = {endpoint: stats["requests"] for endpoint, stats in endpoints.items()}
    assert max(counts, key=counts.__getitem__) == "book"
    assert min(counts, key=counts.__getitem__) == "cancel"
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]

    assert result["app_cpu_ms_per_request"] > 0
    assert result["client_cpu_ms_per_request"] > 0
    assert 0 < result["machine_busy"] <= 1
    assert len(result["process_cpu_s"]) == 1  # one worker: uvicorn serves in its own process
    if config.backend == "postgres":
        assert result["postgres_cpu_ms_per_request"] > 0  # the server runs on this machine
    else:
        assert result["postgres_cpu_ms_per_request"] is None


def test_a_run_is_bounded() -> None:
    with pytest.raises(ValueError, match="at most 60 s"):
        measure(CONFIGS["memory-1"], seconds=58, warmup=3)
