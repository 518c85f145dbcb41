"""``python -m opd_engine``: the scripted day shows every behaviour, the same way every run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from opd_engine import Allocator, Doctor, Event, OnFull, Policies, Slot, Source, __version__
from opd_engine.__main__ import main
from opd_engine._demo import at, describe, run


@pytest.fixture(scope="module")
def day() -> str:
    out = io.StringIO()
    run(out)
    return out.getvalue()


def lines_of(text: str, pattern: str) -> list[int]:
    """Indexes of the lines of ``text`` that match ``pattern``."""
    return [i for i, line in enumerate(text.splitlines()) if re.search(pattern, line)]


def test_main_scripted_prints_the_scripted_day(
    capsys: pytest.CaptureFixture[str], day: str
) -> None:
    assert main(["--scripted"]) == 0
    assert capsys.readouterr().out == day


def simulated(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_main_simulates_the_default_day(capsys: pytest.CaptureFixture[str]) -> None:
    out = simulated(capsys)
    assert out.startswith("opd-engine: a simulated OPD day (25 November 2026), seed 1")
    assert "D2 Dr. Vikram Iyer, General Medicine (starts 20 minutes late)" in out
    assert "D3 Dr. Kiran Das, General Medicine (goes home sick at 11:00)" in out
    assert "D1 Dr. Asha Rao, General Medicine (a break 11:00-11:20)" in out
    assert "D4 Dr. Meera Nair, Cardiology (away 10:30-11:00)" in out
    for heading in ("Patients by priority", "Patients by source", "Doctors (minutes)", "Moves: "):
        assert heading in out
    assert "idle while a patient waited: 0.0 min" in out
    # The command records the estimates told at check-in (off in the default day) and
    # reports their coverage, median width and median wait.
    assert re.search(r"Estimates at check-in: \d+ of \d+ called inside their window \(\d+%\)", out)
    assert re.search(r"median width [\d.]+ min against a median wait of [\d.]+ min", out)
    assert "not recorded" not in out
    for name in ("EMERGENCY", "PAID", "FOLLOW_UP", "STANDARD", "ONLINE", "WALK_IN", "D4"):
        assert re.search(rf"^{name} ", out, re.MULTILINE), name


@pytest.mark.parametrize("seed", ["1", "5", "23"])
def test_the_report_fits_an_80_column_terminal(
    capsys: pytest.CaptureFixture[str], seed: str
) -> None:
    """Issue 14: no line of the printed day is wider than 80 columns; the legend and one
    line per doctor are there."""
    out = simulated(capsys, "--seed", seed)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "\nLegend\n" in out
    for doctor in ("D1", "D2", "D3", "D4"):
        assert re.search(rf"^{doctor}: (idle|never idle)", out, re.MULTILINE), doctor


def test_main_seed_chooses_the_day(capsys: pytest.CaptureFixture[str]) -> None:
    first = simulated(capsys, "--seed", "7")
    assert simulated(capsys, "--seed", "7") == first
    assert "seed 7" in first
    assert simulated(capsys, "--seed", "8") != first
    assert simulated(capsys) == simulated(capsys, "--seed", "1")


def test_the_day_is_the_same_every_run(day: str) -> None:
    again = io.StringIO()
    run(again)
    assert again.getvalue() == day


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_help:
        main(["--help"])
    assert exit_help.value.code == 0
    shown = capsys.readouterr().out
    assert "--seed" in shown
    assert "--scripted" in shown
    with pytest.raises(SystemExit) as exit_version:
        main(["--version"])
    assert exit_version.value.code == 0
    assert capsys.readouterr().out.strip() == f"opd-engine {__version__}"


def test_unknown_argument_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_error:
        main(["--no-such-flag"])
    assert exit_error.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_runs_as_a_module(capsys: pytest.CaptureFixture[str], day: str) -> None:
    scripted = subprocess.run(
        [sys.executable, "-m", "opd_engine", "--scripted"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert scripted.stdout == day
    assert scripted.stderr == ""
    default = subprocess.run(
        [sys.executable, "-m", "opd_engine"], capture_output=True, text=True, check=True
    )
    assert default.stdout == simulated(capsys)  # the same day in another process
    assert default.stderr == ""


def console_script() -> Path:
    """The installed ``opd-engine`` script, beside this interpreter's other scripts."""
    folder = Path(sysconfig.get_path("scripts"))
    found = sorted(folder.glob("opd-engine*"))
    assert found, f"no opd-engine script in {folder}: reinstall the project (pip install -e .)"
    return found[0]


def test_the_console_script_is_main() -> None:
    [script] = entry_points(group="console_scripts", name="opd-engine")
    assert script.load() is main


def test_the_console_script_runs_the_same_day(capsys: pytest.CaptureFixture[str], day: str) -> None:
    script = str(console_script())
    scripted = subprocess.run([script, "--scripted"], capture_output=True, text=True, check=True)
    assert scripted.stdout == day
    assert scripted.stderr == ""
    seeded = subprocess.run([script, "--seed", "3"], capture_output=True, text=True, check=True)
    assert seeded.stdout == simulated(capsys, "--seed", "3")
    assert seeded.stderr == ""


def test_usage_names_the_command_as_it_was_run() -> None:
    wide = {**os.environ, "COLUMNS": "100"}  # each usage line fits on one line
    script = subprocess.run(
        [str(console_script()), "--help"], capture_output=True, text=True, check=True, env=wide
    )
    assert script.stdout.startswith("usage: opd-engine ")
    module = subprocess.run(
        [sys.executable, "-m", "opd_engine", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=wide,
    )
    assert module.stdout.startswith("usage: python -m opd_engine ")
    assert module.stdout.split("\n", 1)[1] == script.stdout.split("\n", 1)[1]


def test_three_doctors_in_two_departments(day: str) -> None:
    assert "D1 Dr. Asha Rao, General Medicine" in day
    assert "D2 Dr. Vikram Iyer, General Medicine" in day
    assert "D3 Dr. Meera Nair, Cardiology" in day


def test_bookings_from_every_source(day: str) -> None:
    for kind in ("online", "paid", "follow-up", "walk-in", "walk-in, emergency"):
        assert re.search(rf"booked: \w+, {kind} -> ", day), kind


def test_full_slots_and_duplicates_are_refused(day: str) -> None:
    assert "refused: SlotFullError: doctor 'D1' is full" in day
    assert "refused: DuplicateBookingError: patient already holds active token 'D1-001'" in day
    assert "D1-009" not in day  # neither refused booking issued a token


def test_emergency_overflows_then_displaces(day: str) -> None:
    [first] = lines_of(day, r"D1-007 booked: Om, walk-in, emergency -> D1@09")
    [second] = lines_of(day, r"D1-008 booked: Priya, walk-in, emergency -> D1@09")
    [displaced] = lines_of(day, r"D1-001 moved D1@09 -> waitlist of D1 \(DISPLACED\)")
    assert first < second < displaced
    assert not lines_of(day, r"moved .*DISPLACED")[1:]  # the first emergency moved nobody
    [called] = lines_of(day, r"D1-007 called by D1")
    assert lines_of(day, r"called by D1")[0] == called


def test_cancellation_is_refilled_from_the_waitlist(day: str) -> None:
    [cancelled] = lines_of(day, r"D1-005 cancelled")
    [refilled] = lines_of(day, r"D1-001 moved waitlist -> D1@10 \(FROM_WAITLIST\)")
    assert refilled == cancelled + 1


def test_no_show_late_arrival_and_pull_forward(day: str) -> None:
    [no_show] = lines_of(day, r"D1-003 no-show")
    [pulled] = lines_of(day, r"D1-001 moved D1@10 -> D1@09 \(PULLED_FORWARD\)")
    [late] = lines_of(day, r"D1-003 moved D1@09 -> D1@10 \(LATE_ARRIVAL\)")
    assert no_show < pulled < late


def test_aging_lifts_the_long_waiting_walk_in(day: str) -> None:
    [nisha] = lines_of(day, r"D2-002 called by D2: Nisha, walk-in")
    [indu] = lines_of(day, r"D2-003 called by D2: Indu, follow-up")
    assert nisha < indu


def test_delay_resize_and_unavailable_doctor(day: str) -> None:
    assert "doctor D3 delayed 20 min (20 min in all)" in day
    assert "Mohan's estimated start moves from 10:00 to 10:20." in day
    assert "slot D3@10 resized 2 -> 4" in day
    assert lines_of(day, r"D2@10 -> waitlist of D2 \(RESIZED\)")
    reassigned = lines_of(day, r"\(REASSIGNED\)")
    assert len(reassigned) == 4
    lines = day.splitlines()
    assert all("D1" in lines[i] and "D3" not in lines[i] for i in reassigned)
    assert lines_of(day, r"waitlist -> D1@11 \(FROM_WAITLIST\)")


def test_missed_call_retriage_and_idle_fill(day: str) -> None:
    [called] = lines_of(day, r"D1-003 called by D1: Chetan")
    [missed] = lines_of(day, r"D1-003 missed the call \(1 so far\): back in D1@10")
    assert missed == called + 1
    [retriaged] = lines_of(day, r"D3-004 re-triaged STANDARD -> EMERGENCY")
    [qadir] = lines_of(day, r"D3-004 called by D3: Qadir, walk-in, emergency")
    assert qadir == retriaged + 1
    [seated] = lines_of(day, r"D2-005 moved waitlist -> D1@10 \(FROM_WAITLIST\)")
    [ravi] = lines_of(day, r"D2-005 called by D1: Ravi")
    assert ravi == seated + 1


def test_doctor_back_reschedule_close_slot_and_alternatives(day: str) -> None:
    [back] = lines_of(day, r"doctor D2 available again")
    [rescheduled] = lines_of(day, r"D1-004 moved D1@10 -> D2@10 \(RESCHEDULED\)")
    [closed] = lines_of(day, r"slot D1@11 closed")
    moved = lines_of(day, r"D1@11 -> D2@11 \(SLOT_CLOSED\)")
    assert back < rescheduled < closed < moved[0]
    assert len(moved) == 2
    [refused] = lines_of(day, r"refused: SlotFullError: slot 'D1@10' is full")
    assert day.splitlines()[refused + 1].strip() == "alternatives with room now: D2@11"


def test_final_queues_and_invariants(day: str) -> None:
    assert "Queues at 10:32" in day
    assert "D2 Dr. Vikram Iyer (General Medicine)\n" in day
    assert re.search(r"D1@11 11:00-12:00 \[1/3\] closed: empty", day)
    assert re.search(r"D2@11 11:00-12:00 \[2/3\]: D2-006 FOLLOW_UP", day)
    assert day.rstrip().endswith("check_invariants(): all hold.")


def test_describe_every_event_kind() -> None:
    alloc = Allocator(clock=lambda: at("08:00"))
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.add_doctor(Doctor("D9", "Dr. Nine", department="ENT"))
    alloc.add_slot(Slot("D9@09", "D9", at("09:00"), at("10:00"), 2))
    assert [describe(event) for event in seen] == [
        "doctor D9 added (ENT)",
        "slot D9@09 added for D9 (2 places)",
    ]


def test_describe_a_waitlisted_booking() -> None:
    alloc = Allocator(policies=Policies(on_full=OnFull.WAITLIST), clock=lambda: at("08:00"))
    alloc.add_doctor(Doctor("D9", "Dr. Nine"))
    alloc.add_slot(Slot("D9@09", "D9", at("09:00"), at("10:00"), 0))
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.book("Tara", "D9", source=Source.FOLLOW_UP)
    assert [describe(event) for event in seen] == ["D9-001 waitlisted: Tara, follow-up"]
