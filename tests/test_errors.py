"""The exception tree: one root, leaves that mix in the builtin they resemble."""

from __future__ import annotations

import pickle

import pytest

from opd_engine import (
    Allocator,
    DuplicateBookingError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    OPDError,
    SlotClosedError,
    SlotFullError,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)

PARENTS: list[tuple[type[Exception], tuple[type[Exception], ...]]] = [
    (InvalidArgumentError, (OPDError, ValueError)),
    (NotFoundError, (OPDError, LookupError)),
    (UnknownDoctorError, (NotFoundError,)),
    (UnknownSlotError, (NotFoundError,)),
    (UnknownTokenError, (NotFoundError,)),
    (SlotFullError, (OPDError,)),
    (SlotClosedError, (OPDError,)),
    (DuplicateBookingError, (OPDError,)),
    (InvalidTransitionError, (OPDError,)),
]


@pytest.mark.parametrize(("error", "parents"), PARENTS, ids=lambda v: getattr(v, "__name__", ""))
def test_hierarchy(error: type[Exception], parents: tuple[type[Exception], ...]) -> None:
    assert error.__bases__ == parents
    assert issubclass(error, OPDError)
    assert issubclass(OPDError, Exception)


def test_only_argument_errors_are_value_errors() -> None:
    value_errors = [e for e, _ in PARENTS if issubclass(e, ValueError)]
    lookup_errors = [e for e, _ in PARENTS if issubclass(e, LookupError)]
    assert value_errors == [InvalidArgumentError]
    assert lookup_errors == [NotFoundError, UnknownDoctorError, UnknownSlotError, UnknownTokenError]


def test_callers_may_catch_the_builtin(alloc: Allocator) -> None:
    with pytest.raises(ValueError, match="priority"):
        alloc.book("P", "D1", priority=3)  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="D9"):
        alloc.doctor("D9")
    with pytest.raises(LookupError, match="D1-999"):
        alloc.token("D1-999")
    # Not a KeyError: a caller's `except KeyError` around dict code never swallows ours.
    assert not any(issubclass(e, KeyError) for e, _ in PARENTS)


def test_duplicate_booking_error_carries_the_token_id(alloc: Allocator) -> None:
    first = alloc.book("P", "D1")
    with pytest.raises(DuplicateBookingError) as info:
        alloc.book("P", "D1")
    assert info.value.token_id == first.id
    assert first.id in str(info.value)
    error = DuplicateBookingError("patient already holds 'D2-004'", "D2-004")
    assert (error.token_id, str(error)) == ("D2-004", "patient already holds 'D2-004'")


def test_slot_full_error_says_is_full(alloc: Allocator) -> None:
    for i in range(3):
        alloc.book(f"P{i}", "D2", "D2@11")
    with pytest.raises(SlotFullError) as info:
        alloc.book("X", "D2", "D2@11")
    assert "is full" in str(info.value)
    assert "D2@11" in str(info.value)


def test_errors_raised_by_the_allocator_cross_process_boundaries(alloc: Allocator) -> None:
    """A process pool sends a worker's exception back pickled: each keeps its class, message
    and attributes (a lost argument would break unpickling in the parent)."""
    first = alloc.book("P", "D1")
    for i in range(3):
        alloc.book(f"P{i}", "D2", "D2@11")
    raised: list[OPDError] = []
    for call in (
        lambda: alloc.book("P", "D1"),
        lambda: alloc.book("X", "D2", "D2@11"),
        lambda: alloc.token("nope"),
        lambda: alloc.complete(first.id),
        lambda: alloc.add_slot(alloc.slot("D1@09")),
    ):
        with pytest.raises(OPDError) as info:
            call()
        raised.append(info.value)
    assert len({type(error) for error in raised}) == 5
    for error in raised:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert vars(again) == vars(error)
    duplicate, full = raised[0], raised[1]
    assert isinstance(duplicate, DuplicateBookingError)
    assert pickle.loads(pickle.dumps(duplicate)).token_id == first.id
    assert isinstance(full, SlotFullError)
    assert pickle.loads(pickle.dumps(full)).alternatives == full.alternatives


def test_every_error_has_a_docstring() -> None:
    for error, _ in [(OPDError, ()), *PARENTS]:
        assert (error.__doc__ or "").strip(), error.__name__
