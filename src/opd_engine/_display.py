"""HTML tables for notebooks: escaped, row-capped, and None when there is nothing to show."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from ._allocator import Allocator
    from ._slot import Slot
    from ._values import Token

#: Rows shown before a table is cut short with a "... more" row.
MAX_ROWS: Final = 50


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return html.escape(value.strftime("%Y-%m-%d %H:%M"))
    if isinstance(value, Enum):
        return html.escape(value.name)
    return html.escape(str(value))


def table(caption: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table of at most :data:`MAX_ROWS` rows, every cell escaped. O(rows shown)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body: list[str] = []
    hidden = 0
    for row in rows:
        if len(body) == MAX_ROWS:
            hidden += 1
            continue
        body.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    if hidden:
        body.append(f'<tr><td colspan="{len(header)}">... {hidden} more</td></tr>')
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def token_html(token: Token) -> str:
    """A token's fields, one row each, as its repr shows them (``patient_id`` stays out, as
    in the repr: a notebook is easily shared). O(fields)."""
    rows = [(f.name, getattr(token, f.name)) for f in attrs.fields(type(token)) if f.repr]
    caption = f"Token {token.id} of {token.doctor_id}: {token.status.name}"
    return table(caption, ("field", "value"), rows)


def _token_row(token: Token, position: int) -> tuple[object, ...]:
    here = "yes" if token.checked_in_at is not None else "no"
    return (position, token.id, token.priority.name, token.source.name, here, token.moves)


def slot_html(slot: Slot, queue: Sequence[Token]) -> str:
    """A slot's figures and its waiting tokens in ``(priority, seq)`` order."""
    caption = (
        f"Slot {slot.id} of {slot.doctor_id}, {slot.start:%Y-%m-%d %H:%M}-{slot.end:%H:%M}: "
        f"{slot.occupancy}/{slot.capacity} held, {slot.waiting} waiting, {slot.present} present "
        f"(in (priority, seq) order; Allocator.queue gives the standing order)"
    )
    header = ("#", "token", "priority", "source", "present", "moves")
    return table(caption, header, (_token_row(t, i) for i, t in enumerate(queue, start=1)))


def allocator_html(alloc: Allocator) -> str | None:
    """One row per slot, doctor by doctor; None for an allocator without doctors."""
    doctors = alloc.doctors()
    if not doctors:
        return None
    rows = []
    for doctor in doctors:
        waitlisted = len(alloc.waitlist(doctor.id))
        for slot in alloc.slots(doctor.id):
            queue = alloc.queue(slot.id)
            head = queue[0].id if queue else None
            rows.append(
                (
                    doctor.id,
                    slot.id,
                    slot.start,
                    slot.end,
                    f"{slot.occupancy}/{slot.capacity}",
                    slot.waiting,
                    slot.present,
                    head,
                    waitlisted,
                )
            )
    header = ("doctor", "slot", "start", "end", "held", "waiting", "present", "next", "waitlist")
    return table(repr(alloc), header, rows)
