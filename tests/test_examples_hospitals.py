"""Many hospitals' days in the HTTP recipe (docs/examples/http_service.py): ``Days``,
``postgres_days`` and ``hospitals_app``, serving ``/hospitals/{hospital}/days/{date}/...``.

Each hospital's date is a day of its own: its own token numbers, its own bookings, its own
idempotency keys. First in process, through FastAPI's TestClient, with the days in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from conftest import CAPACITY, DOCTORS, HOURS, load_example
from opd_engine import Allocator, Slot

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when it finds only httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

http_service = load_example("http_service")
Days: Callable[..., Any] = http_service.Days
InMemory: Callable[[Allocator], Any] = http_service.InMemory
create_app: Callable[[Any], FastAPI] = http_service.create_app

FIRST, SECOND = date(2026, 11, 25), date(2026, 11, 26)


def make_day(day: date) -> Allocator:
    """The fixture's doctors and slots (``D1@09`` ...) on ``day``, its clock at 08:30."""
    alloc = Allocator(clock=lambda: datetime.combine(day, time(8, 30)))
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            start = datetime.combine(day, time(hour))
            slot_id = f"{doctor.id}@{hour:02d}"
            alloc.add_slot(Slot(slot_id, doctor.id, start, start + timedelta(hours=1), CAPACITY))
    return alloc


def url(hospital: str, day: date | str, path: str) -> str:
    return f"/hospitals/{hospital}/days/{day}{path}"


def book_body(patient: str, doctor: str = "D1") -> dict[str, Any]:
    return {"patient_id": patient, "doctor_id": doctor, "source": "ONLINE"}


@pytest.fixture
def opened() -> list[tuple[str, date]]:
    """The days the app opened, in order."""
    return []


@pytest.fixture
def client(opened: list[tuple[str, date]]) -> Iterator[TestClient]:
    """An app over the days of hospitals "north" and "south", in memory."""

    def open_day(hospital: str, day: date) -> Any:
        opened.append((hospital, day))
        return InMemory(make_day(day))

    with TestClient(create_app(Days(open_day, ["north", "south"], in_memory=True))) as client:
        yield client


def test_each_hospital_and_date_is_a_day_of_its_own(
    client: TestClient, opened: list[tuple[str, date]]
) -> None:
    def book(hospital: str, day: date, patient: str) -> str:
        response = client.post(url(hospital, day, "/tokens"), json=book_body(patient))
        assert response.status_code == 201
        token_id: str = response.json()["id"]
        return token_id

    assert book("north", FIRST, "N1") == "D1-001"
    assert book("north", FIRST, "N2") == "D1-002"
    assert book("south", FIRST, "S1") == "D1-001"  # numbered in its own day
    assert book("north", SECOND, "M1") == "D1-001"  # another date of north: another day
    assert opened == [("north", FIRST), ("south", FIRST), ("north", SECOND)]  # once each

    def patient(hospital: str, day: date, token_id: str) -> str | None:
        response = client.get(url(hospital, day, f"/tokens/{token_id}"))
        if response.status_code == 404:
            return None
        assert response.status_code == 200
        name: str = response.json()["patient_id"]
        return name

    assert patient("north", FIRST, "D1-001") == "N1"
    assert patient("south", FIRST, "D1-001") == "S1"
    assert patient("north", SECOND, "D1-001") == "M1"
    assert patient("south", FIRST, "D1-002") is None  # north's second booking stays in north
    assert patient("north", SECOND, "D1-002") is None  # ... on its own date
    for day in (FIRST, SECOND):  # each date's day has that date's slots
        slot = client.get(url("north", day, "/slots/D1@09")).json()
        assert slot["start"] == datetime.combine(day, time(9)).isoformat()
    assert len(opened) == 3


def test_an_unknown_hospital_is_404_and_a_malformed_date_422(
    client: TestClient, opened: list[tuple[str, date]]
) -> None:
    response = client.get(url("west", FIRST, "/doctors"))
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundError"
    assert "west" in response.json()["detail"]
    assert client.post(url("west", FIRST, "/tokens"), json=book_body("W1")).status_code == 404
    for day in ("2026-02-30", "not-a-date", "25-11-2026"):
        assert client.get(url("north", day, "/doctors")).status_code == 422
        assert client.post(url("north", day, "/tokens"), json=book_body("N1")).status_code == 422
    assert opened == []  # no day was opened for any of them


def test_idempotency_keys_belong_to_their_day(client: TestClient) -> None:
    key = {"Idempotency-Key": "retry-1"}
    first = client.post(url("north", FIRST, "/tokens"), json=book_body("N0"))
    assert first.json()["id"] == "D1-001"
    north = client.post(url("north", FIRST, "/tokens"), json=book_body("P1"), headers=key)
    assert north.status_code == 201
    assert north.json()["id"] == "D1-002"
    assert "Idempotent-Replayed" not in north.headers
    for hospital, day in (("south", FIRST), ("north", SECOND)):  # the same key, another day
        other = client.post(url(hospital, day, "/tokens"), json=book_body("P1"), headers=key)
        assert other.status_code == 201
        assert other.json()["id"] == "D1-001"  # a booking of its own, not north's replayed
        assert "Idempotent-Replayed" not in other.headers

    again = client.post(url("north", FIRST, "/tokens"), json=book_body("P1"), headers=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == north.json()
    reused = client.post(url("north", FIRST, "/tokens"), json=book_body("P2"), headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"] == "IdempotencyKeyReused"

    def tokens(hospital: str, day: date) -> list[tuple[str, str]]:
        snapshot = client.get(url(hospital, day, "/state")).json()["snapshot"]
        return [(token["id"], token["patient_id"]) for token in snapshot["tokens"]]

    # The replay and the refusal booked nothing.
    assert tokens("north", FIRST) == [("D1-001", "N0"), ("D1-002", "P1")]
    assert tokens("south", FIRST) == [("D1-001", "P1")]
    assert tokens("north", SECOND) == [("D1-001", "P1")]


def test_days_in_memory_refuse_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, date]] = []

    def open_day(hospital: str, day: date) -> Any:
        opened.append((hospital, day))
        return InMemory(make_day(day))

    monkeypatch.setenv("OPD_WORKERS", "2")
    with pytest.raises(RuntimeError, match="2 workers were requested"):
        create_app(Days(open_day, ["north"], in_memory=True))
    assert create_app(Days(open_day, ["north"])) is not None  # journals shared by workers
    assert opened == []  # days are opened on first use, not when the app is made
