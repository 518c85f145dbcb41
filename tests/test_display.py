"""Notebook display: escaped, row-capped HTML tables; None when there is nothing to show."""

from __future__ import annotations

from conftest import Build, Clock, at
from opd_engine import Allocator, Doctor, Priority, Slot, Source
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
