"""Notebook display: escaped, row-capped HTML tables; None when there is nothing to show."""

from __future__ import annotations

import attrs

from conftest import Build, Clock, at
from opd_engine import Allocator, Doctor, Priority, Slot, Source, Token
from opd_engine._display import MAX_ROWS


def test_an_empty_allocator_falls_back_to_its_repr() -> None:
    assert Allocator()._repr_html_() is None


def test_allocator_html_lists_every_slot(alloc: Allocator) -> None:
    first = alloc.book("P1", "D1", source=Source.PAID, checked_in=True)
    alloc.book("P2", "D1", source=Source.ONLINE)
    page = alloc._repr_html_()
    assert page is not None
    assert page.startswith("<table><caption>&lt;Allocator 3 doctors, 9 slots, 2 waiting&gt;")
    assert page.count("<tr>") == 1 + 9  # header and one row per slot
    row = page.split("<tr>")[2]
    assert row.startswith("<td>D1</td><td>D1@09</td><td>2026-11-25 09:00</td>")
    assert f"<td>2/3</td><td>2</td><td>1</td><td>{first.id}</td><td>0</td>" in row


def test_html_escapes_and_caps_rows(clock: Clock) -> None:
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D<1>", "Dr. One"))
    alloc.add_slot(Slot("S&1", "D<1>", at(9), at(10), 100))
    for i in range(MAX_ROWS + 7):
        alloc.book(f"P{i}", "D<1>", priority=Priority.EMERGENCY if i == 3 else None)
    page = alloc._repr_html_()
    assert page is not None
    assert "<td>D&lt;1&gt;</td><td>S&amp;1</td>" in page
    assert "D<1>" not in page
    slot_page = alloc.slot("S&1")._repr_html_()
    assert slot_page.count("<tr>") == 1 + MAX_ROWS + 1
    assert '<td colspan="6">... 7 more</td>' in slot_page
    # The slot lists tokens in (priority, seq) order: the emergency first.
    assert "<td>1</td><td>D&lt;1&gt;-004</td><td>EMERGENCY</td>" in slot_page


def test_slot_html_shows_its_figures(build: Build) -> None:
    alloc = build()
    alloc.book("P1", "D1", "D1@10", source=Source.ONLINE)
    page = alloc.slot("D1@10")._repr_html_()
    assert "Slot D1@10 of D1, 2026-11-25 10:00-11:00: 1/3 held, 1 waiting, 0 present" in page
    assert "<td>1</td><td>D1-001</td><td>STANDARD</td><td>ONLINE</td><td>no</td><td>0</td>" in page


def test_token_html_shows_its_fields_but_not_the_patient(clock: Clock) -> None:
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D<1>", "Dr. One"))
    alloc.add_slot(Slot("S&1", "D<1>", at(9), at(10), 2))
    token = alloc.book("Asha <b>Rao</b>", "D<1>", source=Source.PAID)
    page = token._repr_html_()
    assert page.startswith("<table><caption>Token D&lt;1&gt;-001 of D&lt;1&gt;: BOOKED</caption>")
    assert "<thead><tr><th>field</th><th>value</th></tr></thead>" in page
    rows = page.split("<tbody>")[1].split("<tr>")[1:]
    shown = [row.split("</td>")[0].removeprefix("<td>") for row in rows]
    assert shown == [f.name for f in attrs.fields(Token) if f.name != "patient_id"]
    assert "<tr><td>slot_id</td><td>S&amp;1</td></tr>" in page
    assert "<tr><td>priority</td><td>PAID</td></tr>" in page  # enums by name, not value
    assert "<tr><td>booked_at</td><td>2026-11-25 08:30</td></tr>" in page
    assert "<tr><td>checked_in_at</td><td></td></tr>" in page  # None is an empty cell
    assert "Asha" not in page
    assert "<b>" not in page
    checked_in = alloc.check_in(token.id)
    assert "<tr><td>status</td><td>CHECKED_IN</td></tr>" in checked_in._repr_html_()
