"""The frozen values: Priority, Source, TokenStatus, Token and Doctor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
import pytest

from opd_engine import Doctor, InvalidArgumentError, Priority, Source, Token, TokenStatus
from opd_engine._values import issuer_of, token_id

UntypedDoctor: Any = Doctor


def token(**changes: Any) -> Token:
    fields: dict[str, Any] = {
        "id": "D1-001",
        "patient_id": "MRN-4471",
        "doctor_id": "D1",
        "slot_id": "D1@09",
        "priority": Priority.STANDARD,
        "source": Source.ONLINE,
        "seq": 1,
        "number": 1,
        "status": TokenStatus.BOOKED,
        "booked_at": datetime(2026, 11, 25, 8, 30),
    }
    fields.update(changes)
    return Token(**fields)


def test_priority_values() -> None:
    assert [(p.name, p.value) for p in Priority] == [
        ("EMERGENCY", 0),
        ("PAID", 1),
        ("FOLLOW_UP", 2),
        ("STANDARD", 3),
    ]
    assert Priority.EMERGENCY < Priority.PAID < Priority.FOLLOW_UP < Priority.STANDARD


def test_source_members() -> None:
    assert [s.name for s in Source] == ["ONLINE", "WALK_IN", "PAID", "FOLLOW_UP"]


@pytest.mark.parametrize(
    ("source", "priority"),
    [
        (Source.PAID, Priority.PAID),
        (Source.FOLLOW_UP, Priority.FOLLOW_UP),
        (Source.ONLINE, Priority.STANDARD),
        (Source.WALK_IN, Priority.STANDARD),
    ],
)
def test_default_priority(source: Source, priority: Priority) -> None:
    assert source.default_priority is priority


def test_token_status_members() -> None:
    assert [s.name for s in TokenStatus] == [
        "BOOKED",
        "WAITLISTED",
        "CHECKED_IN",
        "IN_CONSULTATION",
        "COMPLETED",
        "CANCELLED",
        "NO_SHOW",
        "AWAY",
        "UNSEEN",
    ]


@pytest.mark.parametrize(
    ("status", "waiting", "active"),
    [
        (TokenStatus.BOOKED, True, True),
        (TokenStatus.WAITLISTED, False, True),
        (TokenStatus.CHECKED_IN, True, True),
        (TokenStatus.IN_CONSULTATION, False, True),
        (TokenStatus.COMPLETED, False, False),
        (TokenStatus.CANCELLED, False, False),
        (TokenStatus.NO_SHOW, False, False),
    ],
)
def test_token_status_views(status: TokenStatus, waiting: bool, active: bool) -> None:
    assert (status.waiting, status.active) == (waiting, active)


def test_token_defaults() -> None:
    t = token()
    assert (t.checked_in_at, t.moves, t.called_at, t.completed_at) == (None, 0, None, None)


def test_token_is_frozen() -> None:
    t = token()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        t.status = TokenStatus.CANCELLED  # type: ignore[misc]
    assert attrs.evolve(t, status=TokenStatus.CANCELLED).status is TokenStatus.CANCELLED
    assert t.status is TokenStatus.BOOKED


def test_token_equality_is_by_value() -> None:
    assert token() == token()
    assert token() != token(moves=1)
    assert hash(token()) == hash(token())


def test_patient_id_is_kept_out_of_the_repr() -> None:
    text = repr(token())
    assert "MRN-4471" not in text
    assert "patient_id" not in text
    assert "D1-001" in text


def test_doctor_defaults_and_positional_order() -> None:
    doctor = Doctor("D1", "Dr. Rao")
    assert (doctor.id, doctor.name, doctor.department, doctor.consult_minutes) == (
        "D1",
        "Dr. Rao",
        "",
        10,
    )
    assert Doctor("D2", "Dr. Iyer", "Cardiology", 15).consult_minutes == 15


def test_doctor_is_frozen() -> None:
    doctor = Doctor("D1", "Dr. Rao")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        doctor.name = "Dr. Other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"id": 5, "name": "x"}, "id"),
        ({"id": "", "name": "x"}, "id"),
        ({"id": " D1", "name": "x"}, "id"),
        ({"id": None, "name": "x"}, "id"),
        ({"id": "D1", "name": None}, "name"),
        ({"id": "D1", "name": 3}, "name"),
        ({"id": "D1", "name": "x", "department": 1}, "department"),
        ({"id": "D1", "name": "x", "consult_minutes": 0}, "consult_minutes"),
        ({"id": "D1", "name": "x", "consult_minutes": -5}, "consult_minutes"),
        ({"id": "D1", "name": "x", "consult_minutes": True}, "consult_minutes"),
        ({"id": "D1", "name": "x", "consult_minutes": "10"}, "consult_minutes"),
        ({"id": "D1", "name": "x", "consult_minutes": 7.5}, "consult_minutes"),
    ],
)
def test_doctor_validation(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{argument} must"):
        UntypedDoctor(**kwargs)


def test_doctor_allows_an_empty_name_and_department() -> None:
    assert Doctor("D1", "").name == ""


def distinct_token() -> Token:
    """A token whose every field has a distinct, non-default value, so a copy that left a
    field out, or swapped two, would show."""
    base = datetime(2026, 11, 25, 9)
    token = Token(
        id="D1-007",
        patient_id="P",
        doctor_id="D1",
        slot_id="D1@09",
        priority=Priority.PAID,
        source=Source.FOLLOW_UP,
        seq=41,
        number=7,
        status=TokenStatus.BOOKED,
        booked_at=base,
        checked_in_at=base.replace(minute=5),
        moves=2,
        missed_calls=1,
        called_at=base.replace(minute=9),
        completed_at=base.replace(minute=30),
    )
    assert len({repr(getattr(token, f.name)) for f in attrs.fields(Token)}) == len(
        attrs.fields(Token)
    )
    return token


def test_copy_token_copies_every_field() -> None:
    """The allocator's fast copy is ``attrs.evolve``: every field, then the changes."""
    from opd_engine._values import copy_token

    token = distinct_token()
    assert copy_token(token, {}) == token
    assert copy_token(token, {}) is not token
    changes: dict[str, object] = {"status": TokenStatus.COMPLETED, "moves": 3}
    assert copy_token(token, changes) == attrs.evolve(token, **changes)  # type: ignore[arg-type]


def test_copiers_and_the_builder_are_evolve_and_init() -> None:
    """The generated copiers of the hot paths equal ``attrs.evolve``, field for field, and
    the positional builder equals ``Token(...)``."""
    from opd_engine._desk import with_arrival, with_call, with_completion, with_move, with_status
    from opd_engine._values import copier, new_token

    token = distinct_token()
    later = datetime(2026, 11, 25, 11)
    cases: list[tuple[Token, dict[str, object]]] = [
        (
            with_arrival(token, TokenStatus.CHECKED_IN, later),
            {"status": TokenStatus.CHECKED_IN, "checked_in_at": later},
        ),
        (
            with_call(token, TokenStatus.IN_CONSULTATION, later),
            {"status": TokenStatus.IN_CONSULTATION, "called_at": later},
        ),
        (
            with_completion(token, TokenStatus.COMPLETED, later),
            {"status": TokenStatus.COMPLETED, "completed_at": later},
        ),
        (with_status(token, TokenStatus.CANCELLED), {"status": TokenStatus.CANCELLED}),
        (
            with_move(token, "D2", None, TokenStatus.WAITLISTED, 3),
            {"doctor_id": "D2", "slot_id": None, "status": TokenStatus.WAITLISTED, "moves": 3},
        ),
    ]
    for copy, changes in cases:
        assert copy == attrs.evolve(token, **changes)  # type: ignore[arg-type]
        assert type(copy) is Token
    built = new_token(*(getattr(token, f.name) for f in attrs.fields(Token)))
    assert built == token
    assert type(built) is Token
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.status = TokenStatus.CANCELLED  # type: ignore[misc]
    from opd_engine._generated import draft_class

    draft = draft_class(Token)
    assert draft.__bases__ == (Token,)
    assert draft.__slots__ == ()  # type: ignore[attr-defined]  # Token's layout, nothing added
    with pytest.raises(ValueError, match="colour"):
        copier("status", "colour")


@pytest.mark.parametrize(
    ("doctor_id", "number", "expected"),
    [
        ("D1", 1, "D1-001"),
        ("D1", 42, "D1-042"),
        ("D1", 999, "D1-999"),
        ("D1", 1000, "D1-1000"),
        ("D1", 12345, "D1-12345"),
        ("ortho-2", 7, "ortho-2-007"),
    ],
)
def test_the_token_id_format(doctor_id: str, number: int, expected: str) -> None:
    """A token's id is its issuing doctor's id and its number, padded to three digits; the
    doctor is read back from the part before the last dash, dashes of its own kept."""
    assert token_id(doctor_id, number) == expected
    assert issuer_of(expected) == doctor_id
