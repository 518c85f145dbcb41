"""The HTTP recipe as a service: every desk call, roles, safe retries, dry runs, pages, the
board and its event stream, the OpenAPI document, and many hospitals' days.

The app is driven in-process through FastAPI's TestClient, over an allocator with the
fixture's clock; ``tests/test_examples_http.py`` covers the original endpoints and the error
table, and the journals' own tests cover keys and the audit trail in SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from conftest import Build, Clock, at, load_example
from opd_engine import (
    Allocator,
    Event,
    OnFull,
    Policies,
    Slot,
    TokenCancelled,
    TokenStatus,
    event_to_dict,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

http_service = load_example("http_service")
create_app: Callable[..., FastAPI] = http_service.create_app

KEYS = {
    "desk-secret": "desk",
    "doctor-secret": http_service.ApiKey("clinician", "room-1"),
    "screen-secret": "board",
    "admin-secret": http_service.ApiKey("admin", "ops"),
}
DESK = {"authorization": "Bearer desk-secret"}
DOCTOR = {"authorization": "Bearer doctor-secret"}
SCREEN = {"authorization": "Bearer screen-secret"}
ADMIN = {"authorization": "Bearer admin-secret"}


def book_body(patient: str, doctor: str = "D1", **fields: Any) -> dict[str, Any]:
    return {"patient_id": patient, "doctor_id": doctor, "source": "ONLINE", **fields}


@pytest.fixture
def client(alloc: Allocator) -> Iterator[TestClient]:
    with TestClient(create_app(alloc, keys=KEYS)) as client:
        yield client


def book(client: TestClient, patient: str, **fields: Any) -> str:
    response = client.post("/tokens", json=book_body(patient, **fields), headers=DESK)
    assert response.status_code == 201, response.json()
    token_id: str = response.json()["id"]
    return token_id


# ----------------------------------------------------------------------------- roles

# Issue: "desk books, checks in, cancels, marks no-shows, reschedules and retriages.
# clinician calls (next or out of turn), completes, steps out, reports missed calls, pauses
# and resumes. Every role with a key reads tokens, queues, positions and estimates. admin
# does everything, including delay, resize, closing slots, doctor availability and end of
# day. board only reads the board, the display page and its event stream."
Call = tuple[str, str, "dict[str, Any] | None"]
DESK_CALLS: list[Call] = [
    ("post", "/tokens", book_body("PX")),
    ("post", "/tokens/D1-001/check-in", None),
    ("post", "/tokens/D1-001/cancel", {"reason": "r"}),
    ("post", "/tokens/D1-001/no-show", None),
    ("post", "/tokens/D1-001/reschedule", {"slot_id": "D1@10"}),
    ("post", "/tokens/D1-001/retriage", {"priority": "PAID"}),
]
CLINICIAN_CALLS: list[Call] = [
    ("post", "/doctors/D1/call-next", None),
    ("post", "/tokens/D1-001/call", None),
    ("post", "/tokens/D1-001/complete", None),
    ("post", "/tokens/D1-001/step-out", None),
    ("post", "/tokens/D1-001/missed-call", None),
    ("post", "/doctors/D1/pause", None),
    ("post", "/doctors/D1/resume", None),
]
ADMIN_CALLS: list[Call] = [
    ("post", "/doctors/D1/delay", {"minutes": 5}),
    ("post", "/slots/D1@10/resize", {"capacity": 4}),
    ("post", "/slots/D1@10/close", None),
    ("post", "/doctors/D2/unavailable", None),
    ("post", "/doctors/D2/available", None),
    ("post", "/doctors/D3/end-day", None),
    ("get", "/state", None),
    ("get", "/audit", None),
]
READS: list[Call] = [
    ("get", "/tokens/D1-001", None),
    ("get", "/patients/P1/tokens", None),
    ("get", "/slots/D1@09/queue", None),
    ("get", "/doctors/D1/waitlist", None),
    ("get", "/tokens/D1-001/position", None),
    ("get", "/tokens/D1-001/estimate", None),
    ("get", "/doctors/D1/now-serving", None),
    ("get", "/doctors/D1/next-up", None),
    ("get", "/doctors", None),
    ("get", "/doctors/D1", None),
    ("get", "/doctors/D1/slots", None),
    ("get", "/slots", None),
    ("get", "/slots/D1@09", None),
]
DISPLAY: list[Call] = [("get", "/board", None), ("get", "/display", None)]
ROLE_OF = {"desk": DESK, "clinician": DOCTOR, "board": SCREEN, "admin": ADMIN}
ALLOWED: dict[str, list[Call]] = {
    "desk": DESK_CALLS + READS + DISPLAY,
    "clinician": CLINICIAN_CALLS + READS + DISPLAY,
    "board": DISPLAY,
    "admin": DESK_CALLS + CLINICIAN_CALLS + ADMIN_CALLS + READS + DISPLAY,
}
EVERY_CALL = DESK_CALLS + CLINICIAN_CALLS + ADMIN_CALLS + READS + DISPLAY


@pytest.mark.parametrize(("method", "path", "body"), EVERY_CALL)
def test_without_a_key_every_call_is_401(
    client: TestClient, alloc: Allocator, method: str, path: str, body: Any
) -> None:
    book(client, "P1")
    before = alloc.snapshot()
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.request(method.upper(), path, json=body, headers={"authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert alloc.snapshot() == before


@pytest.mark.parametrize("role", ["desk", "clinician", "board", "admin"])
def test_each_role_makes_exactly_its_calls(build: Build, role: str) -> None:
    journal = http_service.InMemory(build())
    with TestClient(create_app(journal, keys=KEYS)) as client:
        for method, path, body in EVERY_CALL:
            journal.allocator = alloc = build()  # each call on a fresh day
            book(client, "P1", source="WALK_IN")  # D1-001, present in D1@09
            before = alloc.snapshot()
            response = client.request(method.upper(), path, json=body, headers=ROLE_OF[role])
            if (method, path, body) in ALLOWED[role]:
                assert response.status_code not in (401, 403), (path, response.text)
            else:
                assert response.status_code == 403, path
                assert f"a {role} key may not make this call" in response.json()["detail"]
                assert alloc.snapshot() == before


def test_keys_name_a_known_role() -> None:
    with pytest.raises(ValueError, match="must be one of desk, clinician, board, admin"):
        http_service.ApiKey("nurse", "n1")
    with pytest.raises(ValueError, match="got 'nurse'"):
        create_app(Allocator(), keys={"k": "nurse"})
    with pytest.raises(ValueError, match="non-empty"):
        create_app(Allocator(), keys={"": "desk"})


def test_the_display_key_may_come_as_a_query_parameter_or_a_cookie(client: TestClient) -> None:
    assert client.get("/board?key=screen-secret").status_code == 200
    assert client.get("/display?key=screen-secret").status_code == 200
    client.cookies.set("opd_key", "screen-secret")
    assert client.get("/board").status_code == 200
    client.cookies.clear()
    # Only the display's three endpoints read a key there; elsewhere it is not a key.
    assert client.get("/doctors?key=admin-secret").status_code == 401
    assert client.get("/board?key=wrong").status_code == 401


def test_without_keys_the_demo_is_open(alloc: Allocator) -> None:
    with TestClient(create_app(alloc)) as client:
        assert client.post("/tokens", json=book_body("P1")).status_code == 201
        assert client.post("/doctors/D1/delay", json={"minutes": 5}).status_code == 200
        assert client.get("/state").status_code == 200


# ----------------------------------------------------------------------------- the desk


def test_a_day_at_the_desk_and_in_the_doctors_room(
    client: TestClient, alloc: Allocator, clock: Clock
) -> None:
    a = book(client, "A", slot_id="D1@09")
    b = book(client, "B", slot_id="D1@09", source="WALK_IN")
    c = book(client, "C", slot_id="D1@09")
    clock.now = at(9, 0)
    assert client.post(f"/tokens/{a}/check-in", headers=DESK).json()["status"] == "CHECKED_IN"
    assert client.get(f"/tokens/{c}/position", headers=DESK).json() == {
        "token_id": c,
        "position": 3,
    }
    estimate = client.get(f"/tokens/{b}/estimate", headers=DOCTOR).json()
    assert estimate["token_id"] == b
    assert estimate["likely"] == alloc.estimate(b).likely.isoformat()  # type: ignore[union-attr]
    # The walk-in has been present since 08:30, A since 09:00: the default ordering ages.
    next_up = client.get("/doctors/D1/next-up?n=2", headers=DOCTOR).json()
    assert [t["id"] for t in next_up] == [b, a]

    called = client.post("/doctors/D1/call-next", headers=DOCTOR).json()
    assert (called["id"], called["status"]) == (b, "IN_CONSULTATION")
    assert client.get("/doctors/D1/now-serving", headers=DESK).json()["id"] == b
    out = client.post(f"/tokens/{a}/call", headers=DOCTOR).json()  # out of turn
    assert (out["id"], out["status"]) == (a, "IN_CONSULTATION")
    assert alloc.token(b).status is TokenStatus.COMPLETED
    # Sent for a test mid-consultation: away, then back, then called again and seen.
    assert client.post(f"/tokens/{a}/step-out", headers=DOCTOR).json()["status"] == "AWAY"
    assert client.post(f"/tokens/{a}/check-in", headers=DESK).json()["status"] == "CHECKED_IN"
    assert client.post(f"/tokens/{a}/call", headers=DOCTOR).json()["status"] == "IN_CONSULTATION"
    assert client.post(f"/tokens/{a}/complete", headers=DOCTOR).json()["status"] == "COMPLETED"
    assert client.get("/doctors/D1/now-serving", headers=DESK).status_code == 204

    client.post(f"/tokens/{c}/check-in", headers=DESK)
    assert client.post(f"/tokens/{c}/step-out", headers=DOCTOR).json()["status"] == "AWAY"
    assert client.post(f"/tokens/{c}/check-in", headers=DESK).json()["status"] == "CHECKED_IN"
    client.post("/doctors/D1/call-next", headers=DOCTOR)
    missed = client.post(f"/tokens/{c}/missed-call", headers=DOCTOR).json()
    assert (missed["status"], missed["missed_calls"]) == ("BOOKED", 1)  # back, not present

    d = book(client, "D", slot_id="D1@10")
    moved = client.post(f"/tokens/{d}/reschedule", json={"slot_id": "D1@11"}, headers=DESK)
    assert moved.json()["slot_id"] == "D1@11"
    paid = client.post(f"/tokens/{d}/retriage", json={"priority": "PAID"}, headers=DESK)
    assert paid.json()["priority"] == "PAID"
    clock.now = at(11, 30)
    assert client.post(f"/tokens/{d}/no-show", headers=DESK).json()["status"] == "NO_SHOW"
    alloc.check_invariants()


def test_cancel_takes_an_optional_reason(client: TestClient, alloc: Allocator) -> None:
    events: list[Event] = []
    alloc.subscribe(events.append)
    first, second = book(client, "P1"), book(client, "P2")
    assert client.post(f"/tokens/{first}/cancel", headers=DESK).json()["status"] == "CANCELLED"
    body = {"reason": "patient phoned"}
    client.post(f"/tokens/{second}/cancel", json=body, headers=DESK)
    reasons = [e.reason for e in events if isinstance(e, TokenCancelled)]
    assert reasons == ["", "patient phoned"]
    typo = client.post(f"/tokens/{second}/cancel", json={"reasn": "x"}, headers=DESK)
    assert typo.status_code == 422


def test_the_admin_runs_the_day(client: TestClient, alloc: Allocator, clock: Clock) -> None:
    book(client, "P1", slot_id="D1@10")
    late = client.post("/doctors/D1/delay", json={"minutes": 15}, headers=ADMIN).json()
    assert (late["doctor_id"], late["delay_minutes"], late["name"]) == ("D1", 15, "Dr. Rao")
    grown = client.post("/slots/D1@10/resize", json={"capacity": 5}, headers=ADMIN).json()
    assert (grown["capacity"], grown["occupancy"], grown["free"]) == (5, 1, 4)
    closed = client.post("/slots/D1@10/close", headers=ADMIN).json()
    assert closed["closed"] is True
    assert alloc.token("D1-001").slot_id == "D1@11"  # moved on
    gone = client.post("/doctors/D2/unavailable", headers=ADMIN).json()
    assert gone["status"] == "UNAVAILABLE"
    back = client.post("/doctors/D2/available", headers=ADMIN).json()
    assert back["status"] == "AVAILABLE"
    paused = client.post("/doctors/D1/pause", headers=DOCTOR).json()
    assert paused["status"] == "PAUSED"
    assert client.post("/doctors/D1/call-next", headers=DOCTOR).status_code == 409
    assert client.post("/doctors/D1/resume", headers=DOCTOR).json()["status"] == "AVAILABLE"

    clock.now = at(11, 10)
    client.post("/tokens/D1-001/check-in", headers=DESK)
    unseen = client.post("/doctors/D1/end-day", headers=ADMIN).json()
    assert [(t["id"], t["status"]) for t in unseen] == [("D1-001", "UNSEEN")]
    assert client.post("/doctors/D1/call-next", headers=DOCTOR).status_code == 204


# ----------------------------------------------------------------------------- dry runs


# Issue: "The disruptive calls (close_slot, resize, mark_unavailable, end_day) take
# ?dry_run=true, which answers with what preview says would happen."
@pytest.mark.parametrize(
    ("path", "body", "change"),
    [
        ("/slots/D1@09/close", None, lambda a: a.close_slot("D1@09")),
        ("/slots/D1@09/resize", {"capacity": 1}, lambda a: a.resize("D1@09", 1)),
        ("/doctors/D1/unavailable", None, lambda a: a.mark_unavailable("D1")),
        ("/doctors/D1/end-day", None, lambda a: a.end_day("D1")),
    ],
)
def test_a_dry_run_answers_what_preview_says_and_changes_nothing(
    client: TestClient,
    alloc: Allocator,
    path: str,
    body: Any,
    change: Callable[[Allocator], object],
) -> None:
    for patient in ("P1", "P2", "P3"):
        book(client, patient, slot_id="D1@09")
    before, version = alloc.snapshot(), alloc.version
    response = client.post(f"{path}?dry_run=true", json=body, headers=ADMIN)
    assert response.status_code == 200
    answer = response.json()
    assert answer["dry_run"] is True
    expected = [event_to_dict(e) for e in alloc.preview(change)]
    assert answer["events"] == json.loads(json.dumps(expected))
    assert answer["events"]  # each of these changes something on this day
    assert (alloc.snapshot(), alloc.version) == (before, version)
    # ... and the real call emits those very events.
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    assert client.post(path, json=body, headers=ADMIN).status_code == 200
    assert json.loads(json.dumps([event_to_dict(e) for e in seen])) == answer["events"]


def test_a_dry_run_of_a_refused_call_is_its_error(client: TestClient) -> None:
    response = client.post("/slots/D1@99/close?dry_run=true", headers=ADMIN)
    assert (response.status_code, response.json()["error"]) == (404, "UnknownSlotError")
    assert client.post("/slots/D1@09/close?dry_run=true", headers=DESK).status_code == 403


# ----------------------------------------------------------------------------- retries

# Issue: "Every POST honours an Idempotency-Key: the same key with the same request replays
# the first response, status and body, and changes nothing; the same key with a different
# request is refused."


def test_a_retried_booking_with_its_key_books_once(client: TestClient, alloc: Allocator) -> None:
    headers = {**DESK, "idempotency-key": "k-1"}
    body = book_body("P1", priority="EMERGENCY")
    first = client.post("/tokens", json=body, headers=headers)
    version = alloc.version
    again = client.post("/tokens", json=dict(reversed(body.items())), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [t.id for t in alloc.tokens()] == ["D1-001"]
    assert alloc.version == version
    # Without a key, an emergency booked twice is two tokens: the key is what makes it safe.
    client.post("/tokens", json=body, headers=DESK)
    assert len(alloc.tokens()) == 2


def test_a_retried_call_next_never_completes_the_patient_it_called(
    client: TestClient, alloc: Allocator, clock: Clock
) -> None:
    first = book(client, "P1", source="WALK_IN")
    second = book(client, "P2", source="WALK_IN")
    clock.now = at(9, 0)
    headers = {**DOCTOR, "idempotency-key": "call-1"}
    called = client.post("/doctors/D1/call-next", headers=headers)
    retried = client.post("/doctors/D1/call-next", headers=headers)
    assert called.json()["id"] == retried.json()["id"] == first
    assert alloc.token(first).status is TokenStatus.IN_CONSULTATION
    assert alloc.token(second).status is TokenStatus.CHECKED_IN
    nxt = client.post("/doctors/D1/call-next", headers={**DOCTOR, "idempotency-key": "call-2"})
    assert nxt.json()["id"] == second
    assert alloc.token(first).status is TokenStatus.COMPLETED


def test_a_retried_cancel_or_check_in_replays_its_success(
    client: TestClient, alloc: Allocator
) -> None:
    token = book(client, "P1")
    for path in ("check-in", "cancel"):
        headers = {**DESK, "idempotency-key": f"{path}-1"}
        first = client.post(f"/tokens/{token}/{path}", headers=headers)
        again = client.post(f"/tokens/{token}/{path}", headers=headers)
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json() == first.json()
    assert alloc.token(token).status is TokenStatus.CANCELLED
    # Without a key the retry is refused: the token is already cancelled.
    assert client.post(f"/tokens/{token}/cancel", headers=DESK).status_code == 409


def test_a_refusal_is_replayed_too(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.REJECT))
    with TestClient(create_app(alloc, keys=KEYS)) as client:
        taken = [book(client, f"P{i}", slot_id="D1@09") for i in range(3)]
        headers = {**DESK, "idempotency-key": "full"}
        body = book_body("P9", slot_id="D1@09")
        refused = client.post("/tokens", json=body, headers=headers)
        assert refused.status_code == 409
        client.post(f"/tokens/{taken[0]}/cancel", headers=DESK)  # a place frees
        again = client.post("/tokens", json=body, headers=headers)
        assert (again.status_code, again.content) == (409, refused.content)
        assert "P9" not in {t.patient_id for t in alloc.tokens()}


def test_the_same_key_for_another_request_is_refused(client: TestClient, alloc: Allocator) -> None:
    headers = {**DESK, "idempotency-key": "shared"}
    client.post("/tokens", json=book_body("P1"), headers=headers)
    before = alloc.snapshot()
    for method, path, body in [
        ("post", "/tokens", book_body("P2")),
        ("post", "/tokens/D1-001/cancel", None),
    ]:
        response = client.request(method.upper(), path, json=body, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"] == "IdempotencyKeyReused"
        assert "'shared'" in response.json()["detail"]
    assert alloc.snapshot() == before


def test_an_empty_or_huge_key_is_422(client: TestClient, alloc: Allocator) -> None:
    for key in ("", "k" * 256):
        response = client.post(
            "/tokens", json=book_body("P1"), headers={**DESK, "idempotency-key": key}
        )
        assert response.status_code == 422
    assert alloc.tokens() == []


# ----------------------------------------------------------------------------- the audit

# Issue: "The journal records which role and key name made each change: an audit trail."


def test_the_audit_names_the_key_of_every_change(client: TestClient, clock: Clock) -> None:
    token = book(client, "P1", source="WALK_IN")
    clock.now = at(9, 0)
    client.post("/doctors/D1/call-next", headers=DOCTOR)
    client.post(f"/tokens/{token}/cancel", headers=DESK)  # refused: in consultation
    client.get(f"/tokens/{token}", headers=DESK)  # a read changes nothing
    client.post("/doctors/D2/delay", json={"minutes": 5}, headers=ADMIN)
    digest = http_service._digest("desk-secret")[:8]
    trail = client.get("/audit", headers=ADMIN).json()
    actors = [entry["actor"] for entry in trail["items"]]
    assert actors == [f"desk:desk-{digest}", "clinician:room-1", "admin:ops"]
    versions = [entry["version"] for entry in trail["items"]]
    assert versions == sorted(versions)
    assert trail["total"] == 3


# ----------------------------------------------------------------------------- reading


def test_lists_are_paginated(client: TestClient) -> None:
    for i in range(3):
        book(client, f"P{i}", slot_id="D1@09")
    page = client.get("/slots/D1@09/queue?offset=1&limit=1", headers=DESK).json()
    assert page["total"] == 3
    assert (page["offset"], page["limit"]) == (1, 1)
    assert [t["id"] for t in page["items"]] == ["D1-002"]
    slots = client.get("/slots?doctor_id=D2&limit=2", headers=DESK).json()
    assert [s["id"] for s in slots["items"]] == ["D2@09", "D2@10"]
    assert slots["total"] == 3
    doctors = client.get("/doctors", headers=DESK).json()
    assert [d["id"] for d in doctors["items"]] == ["D1", "D2", "D3"]
    for bad in ("limit=0", "limit=1001", "offset=-1"):
        assert client.get(f"/doctors?{bad}", headers=DESK).status_code == 422


def test_the_lookup_by_patient_lists_every_token_of_theirs(client: TestClient) -> None:
    first = book(client, "P1", slot_id="D1@09")
    client.post(f"/tokens/{first}/cancel", headers=DESK)
    book(client, "P2")
    second = book(client, "P1", doctor="D2")
    page = client.get("/patients/P1/tokens", headers=DESK).json()
    assert [(t["id"], t["status"]) for t in page["items"]] == [
        (first, "CANCELLED"),
        (second, "BOOKED"),
    ]
    assert client.get("/patients/nobody/tokens", headers=DESK).json()["items"] == []


def test_reading_a_slot_and_a_doctor(client: TestClient) -> None:
    book(client, "P1", slot_id="D1@09", source="WALK_IN")
    slot = client.get("/slots/D1@09", headers=DESK).json()
    assert slot["start"] == "2026-11-25T09:00:00"
    assert (slot["capacity"], slot["occupancy"], slot["present"], slot["free"]) == (3, 1, 1, 2)
    doctor = client.get("/doctors/D3", headers=DESK).json()
    assert doctor == {"id": "D3", "name": "Dr. Sen", "department": "Cardiology",
                      "consult_minutes": 10}  # fmt: skip
    assert client.get("/doctors/D9", headers=DESK).status_code == 404


def test_estimate_is_204_when_not_waiting(client: TestClient, clock: Clock) -> None:
    token = book(client, "P1", source="WALK_IN")
    clock.now = at(9, 0)
    client.post("/doctors/D1/call-next", headers=DOCTOR)
    assert client.get(f"/tokens/{token}/estimate", headers=DESK).status_code == 204
    assert client.get(f"/tokens/{token}/position", headers=DESK).status_code == 409


# ----------------------------------------------------------------------------- the board


def test_the_board_shows_token_ids_never_patients(client: TestClient, clock: Clock) -> None:
    for patient in ("Asha Rao", "Ravi K"):
        book(client, patient, source="WALK_IN")
    clock.now = at(9, 0)
    client.post("/doctors/D1/call-next", headers=DOCTOR)
    response = client.get("/board?n=2&department=General%20Medicine", headers=SCREEN)
    board = response.json()
    assert "Asha" not in response.text
    assert "Ravi" not in response.text
    assert board["at"] == "2026-11-25T09:00:00"
    assert [d["doctor_id"] for d in board["doctors"]] == ["D1", "D2"]
    first = board["doctors"][0]
    assert first["now_serving"] == {"id": "D1-001", "number": 1, "slot_id": "D1@09"}
    assert [t["id"] for t in first["next_up"]] == ["D1-002"]
    assert (first["name"], first["status"], first["waiting"]) == ("Dr. Rao", "AVAILABLE", 1)


def test_the_display_page_is_served_as_html(client: TestClient) -> None:
    response = client.get("/display", headers=SCREEN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<!doctype html>")


def test_board_events_send_the_board_once_per_change_and_keep_alive() -> None:
    """``board_events``, the body of ``GET /events``, with its reads and sleeps injected."""
    versions = iter([3, 3, 3, 4, 4])
    asked: list[int | None] = []

    def read(last: int | None) -> tuple[int, str | None]:
        asked.append(last)
        version = next(versions)
        return version, None if version == last else f'{{"version": {version}}}'

    async def sleep(_seconds: float) -> None:
        return None

    async def take(count: int) -> list[str]:
        stream = http_service.board_events(read, poll=10.0, keep_alive=15.0, sleep=sleep)
        return [await stream.__anext__() for _ in range(count)]

    sent = asyncio.run(take(4))
    assert sent == [
        "retry: 2000\n\n",
        'event: board\ndata: {"version": 3}\n\n',
        ": keep-alive\n\n",  # 20 s of quiet polls (two of 10 s) before the next
        'event: board\ndata: {"version": 4}\n\n',
    ]
    assert asked == [None, 3, 3, 3]


# ----------------------------------------------------------------------------- OpenAPI


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/openapi.json").json()
    return result


def test_openapi_has_tags_a_security_scheme_and_examples(schema: dict[str, Any]) -> None:
    assert [tag["name"] for tag in schema["tags"]] == ["desk", "clinician", "admin", "read",
                                                       "display"]  # fmt: skip
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["apiKey"]["description"],
    }
    assert schemes["boardKeyQuery"]["in"] == "query"
    assert schemes["boardKeyCookie"]["in"] == "cookie"
    book_op = schema["paths"]["/tokens"]["post"]
    assert book_op["tags"] == ["desk"]
    assert {"apiKey": []} in book_op["security"]
    assert "Idempotency-Key" in [p["name"] for p in book_op["parameters"]]
    assert schema["components"]["schemas"]["BookRequest"]["examples"][0]["source"] == "ONLINE"
    assert {"201", "400", "401", "403", "404", "409", "422"} <= set(book_op["responses"])


def test_openapi_lists_on_each_get_only_the_errors_it_can_answer(schema: dict[str, Any]) -> None:
    token = schema["paths"]["/tokens/{token_id}"]["get"]["responses"]
    assert set(token) == {"200", "401", "403", "404"}
    board = schema["paths"]["/board"]["get"]["responses"]
    assert "422" in board  # n is bounded
    assert "409" not in board
    queue = schema["paths"]["/slots/{slot_id}/queue"]["get"]["responses"]
    assert "400" not in queue
    assert "409" not in queue


def test_every_desk_call_has_an_endpoint(schema: dict[str, Any]) -> None:
    """Issue: give an endpoint to every call a desk, a doctor's room or a display makes."""
    operations = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    expected = {(m, p.replace("D1-001", "{token_id}").replace("D1@10", "{slot_id}")
                 .replace("D1@09", "{slot_id}").replace("/D1/", "/{doctor_id}/")
                 .replace("/D2/", "/{doctor_id}/").replace("/D3/", "/{doctor_id}/")
                 .replace("/P1/", "/{patient_id}/"))
                for m, p, _ in EVERY_CALL}  # fmt: skip
    expected = {(m, "/doctors/{doctor_id}" if p == "/doctors/D1" else p) for m, p in expected}
    expected |= {("get", "/events")}
    expected = {(m, "/slots/{slot_id}" if p == "/slots/D1@09" else p) for m, p in expected}
    assert expected <= operations
    assert operations - expected == set()


# ----------------------------------------------------------------------------- workers


def test_in_memory_state_refuses_several_workers(
    alloc: Allocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPD_WORKERS", "4")
    with pytest.raises(RuntimeError, match="4 workers were requested"):
        create_app(alloc)
    with pytest.raises(RuntimeError, match="4 workers were requested"):
        create_app(http_service.Days(lambda h, d: http_service.InMemory(alloc), ["H"],
                                     in_memory=True))  # fmt: skip
    monkeypatch.setenv("OPD_WORKERS", "1")
    assert create_app(alloc) is not None


# ----------------------------------------------------------------------------- many days


def test_days_route_each_hospital_and_date_to_its_own_day(build: Build) -> None:
    opened: dict[tuple[str, date], Allocator] = {}

    def open_day(hospital: str, day: date) -> Any:
        opened[hospital, day] = build()
        return http_service.InMemory(opened[hospital, day])

    days = http_service.Days(open_day, ["north", "south"], in_memory=True)
    with TestClient(create_app(days, keys=KEYS)) as client:
        north = "/hospitals/north/days/2026-11-25"
        south = "/hospitals/south/days/2026-11-25"
        for prefix in (north, south, north):
            client.post(f"{prefix}/tokens", json=book_body("P1"), headers=DESK)
        assert [t.id for t in opened["north", date(2026, 11, 25)].tokens()] == ["D1-001"]
        assert [t.id for t in opened["south", date(2026, 11, 25)].tokens()] == ["D1-001"]
        # The same key on two days is two requests.
        keyed = {**DESK, "idempotency-key": "k"}
        assert (
            client.post(f"{north}/tokens", json=book_body("P2"), headers=keyed).status_code == 201
        )
        assert (
            client.post(f"{south}/tokens", json=book_body("P2"), headers=keyed).status_code == 201
        )
        assert client.get(f"{north}/tokens/D1-002", headers=DESK).json()["patient_id"] == "P2"
        missing = client.get("/hospitals/west/days/2026-11-25/tokens/D1-001", headers=DESK)
        assert (missing.status_code, missing.json()["detail"]) == (404, "unknown hospital='west'")
        bad = client.get("/hospitals/north/days/25-11-2026/tokens/D1-001", headers=DESK)
        assert bad.status_code == 422
        assert client.get("/tokens/D1-001", headers=DESK).status_code == 404
    assert sorted(opened) == [("north", date(2026, 11, 25)), ("south", date(2026, 11, 25))]


# ----------------------------------------------------------------------------- every store

# Issue: "Retried POSTs are safe on all three stores": the same requests through the app over
# memory, a SQLite journal and a PostgreSQL journal.


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, build: Build, clock: Clock, tmp_path: Path
) -> Iterator[Any]:
    """The fixture's day in each store the app serves, built through the store."""
    template = build()

    def make_day(alloc: Allocator) -> None:
        for doctor in template.doctors():
            alloc.add_doctor(doctor)
        for slot in template.slots():
            alloc.add_slot(Slot(slot.id, slot.doctor_id, slot.start, slot.end, slot.capacity))

    if request.param == "memory":
        yield http_service.InMemory(template)
        return
    # A name of its own, so that a server CI reuses across runs never holds this day.
    name = f"http:{request.node.name}:{uuid.uuid4().hex}"
    if request.param == "sqlite":
        journal = load_example("sqlite_journal").SQLiteJournal(
            tmp_path / "opd.sqlite3", day=name, clock=clock, synchronous="OFF"
        )
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        journal = load_example("postgres_journal").PostgresJournal(dsn, day=name, clock=clock)
    try:
        journal.setup(make_day)
        yield journal
    finally:
        journal.close()


def test_retries_are_safe_in_every_store(store: Any, clock: Clock) -> None:
    with TestClient(create_app(store, keys=KEYS)) as client:
        booked = client.post(
            "/tokens", json=book_body("P1", source="WALK_IN"),
            headers={**DESK, "idempotency-key": "b1"},
        )  # fmt: skip
        again = client.post(
            "/tokens", json=book_body("P1", source="WALK_IN"),
            headers={**DESK, "idempotency-key": "b1"},
        )  # fmt: skip
        assert (booked.status_code, again.status_code) == (201, 201)
        assert again.content == booked.content
        assert again.headers["idempotent-replayed"] == "true"
        client.post("/tokens", json=book_body("P2", source="WALK_IN"), headers=DESK)
        clock.now = at(9, 0)
        call = {**DOCTOR, "idempotency-key": "c1"}
        first = client.post("/doctors/D1/call-next", headers=call).json()
        retried = client.post("/doctors/D1/call-next", headers=call).json()
        assert first == retried
        assert first["id"] == "D1-001"
        assert client.get("/tokens/D1-001", headers=DESK).json()["status"] == "IN_CONSULTATION"
        assert client.get("/tokens/D1-002", headers=DESK).json()["status"] == "CHECKED_IN"
        reused = client.post(
            "/tokens", json=book_body("P3"), headers={**DESK, "idempotency-key": "c1"}
        )
        assert (reused.status_code, reused.json()["error"]) == (422, "IdempotencyKeyReused")
        tokens = client.get("/patients/P1/tokens", headers=DESK).json()
        assert tokens["total"] == 1
        trail = [entry["actor"] for entry in client.get("/audit", headers=ADMIN).json()["items"]]
        digest = http_service._digest("desk-secret")[:8]
        assert trail[-3:] == [f"desk:desk-{digest}"] * 2 + ["clinician:room-1"]


def test_every_model_of_the_api_has_an_example(schema: dict[str, Any]) -> None:
    """Issue: "Each endpoint has typed request and response models, tags, examples"."""
    module = load_example("http_models")
    names = set(module.__all__) - {"Page"}  # a page is its items'
    components = schema["components"]["schemas"]
    assert names <= set(components)  # every model is in the document
    assert sorted(name for name in names if not components[name].get("examples")) == []
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert refs <= set(components)  # and every reference resolves
    # Each example is a valid instance of its model.
    for name in names:
        model = getattr(module, name)
        for example in model.model_json_schema().get("examples", []):
            model.model_validate(example)
