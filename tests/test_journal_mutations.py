"""Journals spoiled one field or one event at a time: replay, apply and from_snapshot agree.

The issue "one path that decides whether a state is possible": a property test "mutates
real journals one field at a time, and checks that anything replay accepts restores
through from_snapshot(snapshot()), and that apply on a live replica agrees with replay".
Real journals come from random days of ``test_journal.step`` under every set of policies
there; a mutation changes one value of one event's dict (at the top level, or inside its
token or doctor), or drops, swaps or repeats one event.

The soak runs the same property for longer, with ``OPD_SOAK_EXAMPLES`` examples (20,000
unless set); the ``soak`` marker keeps it out of the default run::

    pytest -m soak tests/test_journal_mutations.py
"""

from __future__ import annotations

import copy
import json
import os
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opd_engine import Allocator, Event, InvalidArgumentError, event_to_dict
from test_journal import POLICIES, random_day

SOAK = int(os.environ.get("OPD_SOAK_EXAMPLES", "20000"))

Journal = list[dict[str, Any]]


def other_value(value: object, seen: list[object], rng: random.Random) -> object:
    """A value near ``value``, or another one this field takes elsewhere in the journal."""
    if isinstance(value, bool) or value is None or (seen and rng.random() < 0.4):
        choices = [v for v in seen if v != value] or [None]
        return rng.choice(choices)
    if isinstance(value, int):
        return value + rng.choice([-2, -1, 1, 2, 10, -value])
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.partition("[")[0])
        except ValueError:
            return rng.choice([v for v in seen if v != value] or [value + "x"])
        shifted = moment + timedelta(minutes=rng.choice([-90, -5, 5, 90, 24 * 60]))
        return shifted.isoformat()
    return None


def field_mutation(journal: Journal, index: int, rng: random.Random) -> tuple[Journal, str]:
    """``journal`` with one value of event ``index`` changed."""
    event = journal[index]
    paths: list[tuple[str, ...]] = [(key,) for key in event if key != "kind"]
    for nested in ("token", "doctor"):
        if isinstance(event.get(nested), dict):
            paths.extend((nested, key) for key in event[nested])
    path = rng.choice(paths)
    seen: list[object] = []
    for other in journal:
        holder: object = other
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and path[-1] in holder:
            seen.append(holder[path[-1]])
    mutated = copy.deepcopy(journal)
    target = mutated[index]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = other_value(target[path[-1]], seen, rng)
    return mutated, f"event {index} {'.'.join(path)} = {target[path[-1]]!r}"


def replica_cut(journal: Journal, mutated: Journal) -> int:
    """How many events of ``journal`` a live replica has applied before it meets the
    mutation: the calls before the first changed event, and before any version the
    mutation brought in (apply skips events at or below the replica's version, unread)."""
    diff = 0
    while diff < min(len(journal), len(mutated)) and journal[diff] == mutated[diff]:
        diff += 1
    versions = [e["version"] for e in mutated[diff:] if type(e.get("version")) is int]
    if diff < len(journal):
        versions.append(journal[diff]["version"])
    target = min(versions, default=journal[-1]["version"] + 1) - 1
    return sum(1 for e in journal if e["version"] <= target)


def check_agreement(name: str, seed: int, steps: int, how: str, where: int, pick: int) -> None:
    _, clock, events = random_day(name, seed, steps)
    policies = POLICIES[name]
    journal: Journal = [json.loads(json.dumps(event_to_dict(e))) for e in events]
    index = where % len(journal)
    rng = random.Random(pick)
    if how == "field":
        mutated, what = field_mutation(journal, index, rng)
    elif how == "drop":
        mutated, what = journal[:index] + journal[index + 1 :], f"event {index} dropped"
    elif how == "repeat":
        mutated, what = journal[: index + 1] + journal[index:], f"event {index} repeated"
    else:  # swap with the next event
        index = min(index, len(journal) - 2)
        mutated = list(journal)
        mutated[index], mutated[index + 1] = mutated[index + 1], mutated[index]
        what = f"events {index} and {index + 1} swapped"
    cut = replica_cut(journal, mutated)

    try:
        replayed: Allocator | None = Allocator.replay(mutated, policies=policies, clock=clock)
    except InvalidArgumentError:
        replayed = None

    # A call that lost, moved or repeated an event is refused.
    same_call = how == "swap" and journal[index]["version"] == journal[index + 1]["version"]
    whole_last_call = how == "drop" and journal[index]["steps"] == 1 and index == len(journal) - 1
    if how == "repeat" or same_call or (how == "drop" and not whole_last_call):
        assert replayed is None, what

    # Whatever replay accepts is a state from_snapshot restores, and keeps every invariant.
    if replayed is not None:
        replayed.check_invariants()
        restored = Allocator.from_snapshot(replayed.snapshot(), policies=policies, clock=clock)
        assert restored.snapshot() == replayed.snapshot(), what

    # A live replica, up to date with the untouched calls before the change, agrees.
    replica = Allocator.replay(journal[:cut], policies=policies, clock=clock)
    heard: list[Event] = []
    replica.subscribe(heard.append)
    before = replica.snapshot()
    try:
        replica.apply(mutated)
    except InvalidArgumentError:
        assert replayed is None, f"apply refused what replay accepted: {what}"
        assert replica.snapshot() == before, what
        assert heard == [], what
        replica.check_invariants()
    else:
        assert replayed is not None, f"apply accepted what replay refused: {what}"
        assert replica.snapshot() == replayed.snapshot(), what
        replica.check_invariants()


MUTATIONS = st.sampled_from(["field", "field", "field", "field", "drop", "swap", "repeat"])


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    seed=st.integers(0, 10**6),
    steps=st.integers(10, 90),
    how=MUTATIONS,
    where=st.integers(0, 10**6),
    pick=st.integers(0, 10**6),
)
def test_replay_apply_and_from_snapshot_agree_on_spoiled_journals(
    name: str, seed: int, steps: int, how: str, where: int, pick: int
) -> None:
    """One path: "replay, apply and from_snapshot accept exactly the same states". For a
    journal with one value of one event changed, or one event dropped, swapped or
    repeated: what replay accepts restores through from_snapshot(snapshot()) and keeps
    every invariant, apply on a live replica accepts it with the same state or refuses it
    as replay does and then changes nothing, and a call with an event lost, moved or
    repeated is refused."""
    check_agreement(name, seed, steps, how, where, pick)


@pytest.mark.soak
@settings(
    max_examples=SOAK,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    seed=st.integers(0, 10**9),
    steps=st.integers(10, 250),
    how=MUTATIONS,
    where=st.integers(0, 10**9),
    pick=st.integers(0, 10**9),
)
def test_soak_spoiled_journals(
    name: str, seed: int, steps: int, how: str, where: int, pick: int
) -> None:
    """The same property, longer days and many more examples (``-m soak``)."""
    check_agreement(name, seed, steps, how, where, pick)
