"""The HTTP recipe (docs/examples/http_service.py) driven through FastAPI's TestClient.

Every endpoint, every error mapping, and a small end-to-end day. The example is loaded by
path, as a reader would run it; fastapi and httpx come from the ``examples`` extra.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import Enum
from typing import Any

import attrs
import pytest
from fastapi import FastAPI

from conftest import Build, Clock, at, load_example
from opd_engine import (
    Allocator,
    OnFull,
    OPDError,
    Policies,
    Priority,
    Source,
    Token,
    TokenStatus,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when it finds only httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TOKEN_FIELDS = [field.name for field in attrs.fields(Token)]


http_service = load_example("http_service")
create_app: Callable[[Allocator], FastAPI] = http_service.create_app
demo_app: Callable[[Callable[[], datetime] | None], FastAPI] = http_service.demo_app
status_for: Callable[[OPDError], int] = http_service.status_for


def as_json(token: Token) -> dict[str, Any]:
    """What the API should say about ``token``: every field, enums by name, ISO datetimes."""
    row: dict[str, Any] = {}
    for name in TOKEN_FIELDS:
        value = getattr(token, name)
        if isinstance(value, Enum):
            value = value.name
        elif isinstance(value, datetime):
            value = value.isoformat()
        row[name] = value
    return row


def book_body(patient: str, doctor: str = "D1", **fields: Any) -> dict[str, Any]:
    return {"patient_id": patient, "doctor_id": doctor, "source": "ONLINE", **fields}


@pytest.fixture
def client(alloc: Allocator) -> Iterator[TestClient]:
    with TestClient(create_app(alloc)) as client:
        yield client


def fill(client: TestClient, slot_id: str = "D1@09", doctor: str = "D1") -> list[str]:
    """Book the fixture's three places of ``slot_id``; return the token ids."""
    token_ids = []
    for i in range(3):
        response = client.post(
            "/tokens", json=book_body(f"{slot_id}-P{i}", doctor, slot_id=slot_id)
        )
        assert response.status_code == 201
        token_ids.append(response.json()["id"])
    return token_ids


# ----------------------------------------------------------------------------- the module


def test_importing_the_example_builds_nothing() -> None:
    kinds = (FastAPI, Allocator)
    assert not [name for name, value in vars(http_service).items() if isinstance(value, kinds)]


def test_create_app_serves_the_allocator_it_is_given(build: Build) -> None:
    first, second = build(), build()
    TestClient(create_app(first)).post("/tokens", json=book_body("P1"))
    assert [t.id for t in first.tokens()] == ["D1-001"]
    assert second.tokens() == []


def test_demo_app_books_into_the_current_hour() -> None:
    app = demo_app(lambda: datetime(2026, 11, 25, 14, 20))
    with TestClient(app) as client:
        response = client.post("/tokens", json=book_body("P1", source="WALK_IN"))
        assert response.status_code == 201
        assert response.json()["slot_id"] == "D1@14"
        assert response.json()["status"] == "CHECKED_IN"
        assert client.get("/slots/D2@00/queue").json()["items"] == []
        assert client.get("/slots/D2@23/queue").json()["items"] == []
        assert client.get("/slots/D2@24/queue").status_code == 404


@pytest.mark.parametrize(
    ("now", "slot_id"),
    [
        (datetime(2026, 11, 25, 23, 30), "D1@23"),  # the last hour: no slot on the next date
        (datetime(2026, 11, 26, 0, 10), "D1@00"),  # just after midnight: the new date's first
        (datetime(2026, 11, 25, 17, 0), "D1@17"),  # 17:00 built a slot at 00:00 the next day
    ],
)
def test_demo_app_starts_and_books_at_any_hour(now: datetime, slot_id: str) -> None:
    """Issue: from 17:00 the demo day's last slot fell on the next date, the one-OPD-day rule
    refused it, and ``uvicorn --factory http_service:demo_app`` did not start. Its day now
    covers the clock's whole date in hourly slots, so some slot is always open."""
    with TestClient(demo_app(lambda: now)) as client:
        response = client.post("/tokens", json=book_body("P1", source="WALK_IN"))
        assert response.status_code == 201, response.json()
        assert response.json()["slot_id"] == slot_id
        assert response.json()["booked_at"] == now.isoformat()


def test_openapi_schema_names_enums_and_the_204(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    book = schema["components"]["schemas"]["BookRequest"]
    assert book["required"] == ["patient_id", "doctor_id", "source"]
    assert book["properties"]["source"]["enum"] == ["ONLINE", "WALK_IN", "PAID", "FOLLOW_UP"]
    call_next = schema["paths"]["/doctors/{doctor_id}/call-next"]["post"]["responses"]
    assert {"200", "204", "404"} <= set(call_next)


# ----------------------------------------------------------------------------- endpoints


def test_book_returns_201_with_every_token_field(client: TestClient, alloc: Allocator) -> None:
    response = client.post("/tokens", json=book_body("P1", slot_id="D1@10"))
    assert response.status_code == 201
    body = response.json()
    assert list(body) == TOKEN_FIELDS
    assert body == as_json(alloc.token("D1-001"))
    assert body == {
        "id": "D1-001",
        "patient_id": "P1",
        "doctor_id": "D1",
        "slot_id": "D1@10",
        "priority": "STANDARD",
        "source": "ONLINE",
        "seq": 1,
        "number": 1,
        "status": "BOOKED",
        "booked_at": "2026-11-25T08:30:00",
        "checked_in_at": None,
        "moves": 0,
        "missed_calls": 0,
        "called_at": None,
        "completed_at": None,
    }


def test_book_passes_source_priority_and_checked_in(client: TestClient, alloc: Allocator) -> None:
    paid = client.post("/tokens", json=book_body("P1", source="PAID", checked_in=True)).json()
    assert (paid["priority"], paid["source"], paid["status"]) == ("PAID", "PAID", "CHECKED_IN")
    assert paid["checked_in_at"] == "2026-11-25T08:30:00"
    walk_in = client.post("/tokens", json=book_body("P2", source="WALK_IN", checked_in=False))
    assert walk_in.json()["status"] == "BOOKED"
    urgent = client.post("/tokens", json=book_body("P3", priority="EMERGENCY")).json()
    assert (urgent["priority"], urgent["source"]) == ("EMERGENCY", "ONLINE")
    assert alloc.token(urgent["id"]).priority is Priority.EMERGENCY
    assert alloc.token(paid["id"]).source is Source.PAID


def test_book_without_a_slot_takes_the_earliest_with_room(client: TestClient) -> None:
    fill(client, "D1@09")
    response = client.post("/tokens", json=book_body("P1"))
    assert response.json()["slot_id"] == "D1@10"


def test_get_token_follows_the_token(client: TestClient, alloc: Allocator) -> None:
    client.post("/tokens", json=book_body("P1"))
    alloc.check_in("D1-001")
    response = client.get("/tokens/D1-001")
    assert response.status_code == 200
    assert response.json() == as_json(alloc.token("D1-001"))
    assert response.json()["status"] == "CHECKED_IN"


def test_check_in(client: TestClient, clock: Clock) -> None:
    client.post("/tokens", json=book_body("P1"))
    clock.advance(20)
    response = client.post("/tokens/D1-001/check-in")
    assert response.status_code == 200
    assert response.json()["status"] == "CHECKED_IN"
    assert response.json()["checked_in_at"] == "2026-11-25T08:50:00"


def test_cancel(client: TestClient, alloc: Allocator) -> None:
    client.post("/tokens", json=book_body("P1"))
    response = client.post("/tokens/D1-001/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert alloc.queue("D1@09") == []


def test_call_next_returns_the_called_token(client: TestClient, clock: Clock) -> None:
    client.post("/tokens", json=book_body("P1", source="WALK_IN"))
    clock.now = at(9, 5)
    response = client.post("/doctors/D1/call-next")
    assert response.status_code == 200
    assert response.json()["id"] == "D1-001"
    assert response.json()["status"] == "IN_CONSULTATION"
    assert response.json()["called_at"] == "2026-11-25T09:05:00"


def test_call_next_with_nobody_waiting_is_204(client: TestClient, alloc: Allocator) -> None:
    client.post("/tokens", json=book_body("P1"))  # booked, not arrived: not called
    response = client.post("/doctors/D1/call-next")
    assert response.status_code == 204
    assert response.content == b""
    assert alloc.token("D1-001").status is TokenStatus.BOOKED


def test_queue_in_standing_order(client: TestClient) -> None:
    client.post("/tokens", json=book_body("A", slot_id="D1@09"))
    client.post("/tokens", json=book_body("B", slot_id="D1@09", source="WALK_IN"))
    client.post("/tokens", json=book_body("C", slot_id="D1@09", source="PAID"))
    response = client.get("/slots/D1@09/queue")
    assert response.status_code == 200
    # the standing order: paid first, then the standard patients by seq, present or not
    assert [t["patient_id"] for t in response.json()["items"]] == ["C", "A", "B"]
    assert [t["status"] for t in response.json()["items"]] == ["BOOKED", "BOOKED", "CHECKED_IN"]


def test_waitlist_in_order(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    with TestClient(create_app(alloc)) as client:
        fill(client)
        for patient, source in (("W1", "ONLINE"), ("W2", "FOLLOW_UP")):
            body = book_body(patient, slot_id="D1@09", source=source)
            assert client.post("/tokens", json=body).json()["status"] == "WAITLISTED"
        response = client.get("/doctors/D1/waitlist")
        assert response.status_code == 200
        assert [t["patient_id"] for t in response.json()["items"]] == ["W2", "W1"]
        assert all(t["slot_id"] is None for t in response.json()["items"])
        assert client.get("/doctors/D2/waitlist").json()["items"] == []


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("get", "/tokens/D1-999", None, "UnknownTokenError"),
        ("post", "/tokens/D1-999/check-in", None, "UnknownTokenError"),
        ("post", "/tokens/D1-999/cancel", None, "UnknownTokenError"),
        ("post", "/doctors/D9/call-next", None, "UnknownDoctorError"),
        ("get", "/doctors/D9/waitlist", None, "UnknownDoctorError"),
        ("get", "/slots/D1@18/queue", None, "UnknownSlotError"),
        ("post", "/tokens", book_body("P1", "D9"), "UnknownDoctorError"),
        ("post", "/tokens", book_body("P1", slot_id="D1@18"), "UnknownSlotError"),
    ],
)
def test_unknown_ids_are_404(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None, error: str
) -> None:
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == 404
    assert response.json()["error"] == error
    assert "unknown" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "argument"),
    [
        (book_body(""), "patient_id"),
        (book_body(" P1"), "patient_id"),
        (book_body("P1", "D1", slot_id="D2@09"), "doctor_id"),
        (book_body("P1", "D1", slot_id=""), "slot_id"),
    ],
)
def test_invalid_arguments_are_400(client: TestClient, body: dict[str, Any], argument: str) -> None:
    response = client.post("/tokens", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidArgumentError"
    assert argument in response.json()["detail"]


def test_an_invalid_id_in_the_path_is_400(client: TestClient) -> None:
    response = client.get("/tokens/%20D1-001")
    assert response.status_code == 400
    assert "token_id" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"doctor_id": "D1", "source": "ONLINE"},  # no patient
        {"patient_id": "P1", "doctor_id": "D1"},  # no source
        book_body("P1", source="online"),  # an enum by value, not by name
        book_body("P1", source="TELEPHONE"),
        book_body("P1", priority=0),  # a plain int is not a Priority
        book_body("P1", priority="URGENT"),
        {"patient_id": 42, "doctor_id": "D1", "source": "ONLINE"},
        book_body("P1", checked_in="yes"),
        book_body("P1", slotid="D1@09"),  # a typo is not ignored
        [book_body("P1")],
    ],
)
def test_malformed_bodies_are_422(client: TestClient, alloc: Allocator, body: object) -> None:
    response = client.post("/tokens", json=body)
    assert response.status_code == 422
    assert alloc.tokens() == []


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/tokens", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_a_full_slot_is_409(client: TestClient) -> None:
    fill(client)
    response = client.post("/tokens", json=book_body("P9", slot_id="D1@09"))
    assert response.status_code == 409
    assert response.json()["error"] == "SlotFullError"
    assert "is full" in response.json()["detail"]


def test_a_duplicate_booking_is_409_with_the_existing_token(client: TestClient) -> None:
    client.post("/tokens", json=book_body("P0", slot_id="D1@09"))
    client.post("/tokens", json=book_body("P1", slot_id="D1@10"))
    response = client.post("/tokens", json=book_body("P1", slot_id="D1@11"))
    assert response.status_code == 409
    assert response.json() == {
        "detail": "patient already holds active token 'D1-002' with doctor 'D1'",
        "error": "DuplicateBookingError",
        "token_id": "D1-002",
    }


def test_a_closed_slot_is_409(client: TestClient, alloc: Allocator, clock: Clock) -> None:
    clock.now = at(10, 0)
    response = client.post("/tokens", json=book_body("P1", slot_id="D1@09"))
    assert response.status_code == 409
    assert response.json()["error"] == "SlotClosedError"
    assert "token_id" not in response.json()
    alloc.mark_unavailable("D2")
    response = client.post("/tokens", json=book_body("P1", "D2"))
    assert response.status_code == 409
    assert response.json()["error"] == "SlotClosedError"


@pytest.mark.parametrize("path", ["/tokens/D1-001/check-in", "/tokens/D1-001/cancel"])
def test_an_invalid_transition_is_409(client: TestClient, clock: Clock, path: str) -> None:
    client.post("/tokens", json=book_body("P1", source="WALK_IN"))
    clock.now = at(9, 0)
    client.post("/doctors/D1/call-next")
    response = client.post(path)
    assert response.status_code == 409
    assert response.json()["error"] == "InvalidTransitionError"
    assert "IN_CONSULTATION" in response.json()["detail"]


def test_a_refused_call_changes_nothing(client: TestClient, alloc: Allocator) -> None:
    first, _, _ = fill(client)
    client.post(f"/tokens/{first}/check-in")
    before = alloc.snapshot()
    assert client.post("/tokens", json=book_body("P9", slot_id="D1@09")).status_code == 409
    assert client.post("/tokens", json=book_body("D1@09-P0")).status_code == 409
    assert client.post(f"/tokens/{first}/check-in").status_code == 409
    assert client.post("/tokens", json=book_body("", slot_id="D1@10")).status_code == 400
    assert client.post("/tokens", json=book_body("P9", "D9")).status_code == 404
    assert alloc.snapshot() == before


def test_errors_the_table_does_not_know_are_409(alloc: Allocator) -> None:
    class NewError(OPDError):
        """An error a later library version might add."""

    app = create_app(alloc)

    @app.get("/boom")
    def boom() -> None:
        raise NewError("something new")

    response = TestClient(app).get("/boom")
    assert response.status_code == 409
    assert response.json() == {"detail": "something new", "error": "NewError"}
    assert status_for(NewError("x")) == 409


def test_errors_outside_the_library_are_not_mapped(alloc: Allocator) -> None:
    app = create_app(alloc)

    @app.get("/bug")
    def bug() -> None:
        raise LookupError("a bug in the host")

    response = TestClient(app, raise_server_exceptions=False).get("/bug")
    assert response.status_code == 500


# ----------------------------------------------------------------------------- a day


def test_a_small_day_end_to_end(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    with TestClient(create_app(alloc)) as client:
        a, b, c = fill(client)
        waiting = client.post("/tokens", json=book_body("W", slot_id="D1@09")).json()
        assert waiting["status"] == "WAITLISTED"
        assert [t["id"] for t in client.get("/doctors/D1/waitlist").json()["items"]] == [
            waiting["id"]
        ]

        clock.now = at(9, 0)
        for token_id in (b, a):
            assert client.post(f"/tokens/{token_id}/check-in").json()["status"] == "CHECKED_IN"
        queue = client.get("/slots/D1@09/queue").json()["items"]
        assert [t["id"] for t in queue] == [a, b, c]  # both checked in, by seq; then booked

        called = client.post("/doctors/D1/call-next").json()
        assert (called["id"], called["status"]) == (a, "IN_CONSULTATION")
        assert [t["id"] for t in client.get("/slots/D1@09/queue").json()["items"]] == [b, c]

        # cancelling frees a place: the waitlisted patient takes it at once
        assert client.post(f"/tokens/{c}/cancel").json()["status"] == "CANCELLED"
        assert client.get("/doctors/D1/waitlist").json()["items"] == []
        moved = client.get(f"/tokens/{waiting['id']}").json()
        assert (moved["slot_id"], moved["status"]) == ("D1@09", "BOOKED")
        assert [t["id"] for t in client.get("/slots/D1@09/queue").json()["items"]] == [
            b,
            waiting["id"],
        ]

        clock.now = at(9, 10)
        called = client.post("/doctors/D1/call-next").json()
        assert called["id"] == b
        assert client.get(f"/tokens/{a}").json()["status"] == "COMPLETED"
        clock.now = at(9, 20)
        assert client.post("/doctors/D1/call-next").status_code == 204  # W has not arrived
        assert client.get(f"/tokens/{b}").json()["status"] == "COMPLETED"
    alloc.check_invariants()
