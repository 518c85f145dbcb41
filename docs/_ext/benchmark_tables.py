"""``.. benchmark-table:: NAME``: a table of ``docs/benchmarks.json``, as an HTML table.

NAME is ``one-slot`` (microseconds per operation by size, then the ratios and flatness),
``hospital`` (the 200-doctor hospital), ``targets`` (every target, its value and whether
it is met) or ``before-after`` (each target's figure in the earlier run the file records
under ``"before"`` and in this one; a sentence where it records none). The figures are read
when the docs are built, so the page always shows the committed results file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks.json"
ORDER = (
    "floor",
    "seed",
    "book",
    "check_in",
    "call_next",
    "cancel",
    "position",
    "estimated_start",
    "queue",
)


def _table(header: list[str], rows: list[list[str]], title: str) -> nodes.table:
    table = nodes.table(classes=["benchmark-table"])
    table += nodes.title(text=title)
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for cells, parent in [(header, head)] + [(row, body) for row in rows]:
        line = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell)
            line += entry
        parent += line
    return table


def _machine(machine: dict[str, Any] | None) -> str:
    if not machine:
        return "machine not recorded"
    return f"{machine.get('processor') or machine.get('machine')}, {machine.get('cpus')} CPUs"


def _commit(run: dict[str, Any]) -> str:
    commit = run.get("commit")
    if not commit:
        return "commit not recorded"
    changed = " with uncommitted changes" if run.get("uncommitted_changes") else ""
    return f"commit {commit[:10]}{changed}"


def _value(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:,.2f}"


def _met(target: dict[str, Any]) -> str:
    return "met" if target["met"] else "missed"


def one_slot(bench: dict[str, Any]) -> nodes.table:
    sizes = bench["sizes"]
    micro = bench["microseconds_per_operation"]
    rows = [
        [f"{name}, µs"] + [f"{micro[name][str(n)]:,.2f}" for n in sizes]
        for name in ORDER
        if name in micro
    ]
    rows += [
        [label] + [f"{row[str(n)]:,.1f}x" for n in sizes] for label, row in bench["ratios"].items()
    ]
    flat = bench["flatness"]
    rows += [
        [f"{name} flatness"] + [""] * (len(sizes) - 1) + [f"{value:.2f}x"]
        for name, value in flat["ratios"].items()
    ]
    title = (
        f"One slot: microseconds per operation and ratios, same run (opd-engine "
        f"{bench['opd_engine']}, sortedcontainers {bench['sortedcontainers']}, Python "
        f"{bench['python']}; {_machine(bench.get('machine'))}; {_commit(bench)}; flatness: "
        f"n={flat['to']:,} / n={flat['from']:,})"
    )
    return _table(["operation"] + [f"n={n:,}" for n in sizes], rows, title)


def hospital(bench: dict[str, Any]) -> nodes.table:
    h = bench["hospital"]
    micro = h["microseconds_per_operation"]
    labels = {"book": "book (no slot)"}
    rows = [
        [
            labels.get(name, name),
            f"{micro[name]:,.2f}",
            "" if name == "floor" else f"{micro[name] / micro['floor']:.1f}x",
        ]
        for name in ("floor", "book", "check_in", "call_next", "cancel")
    ]
    title = (
        f"Hospital: {h['doctors']} doctors x {h['slots_per_doctor']} slots of capacity "
        f"{h['capacity']}, {h['tokens']:,} tokens (on average {h['moves_per_cancel']:.1f} "
        f"tokens moved per cancel)"
    )
    return _table(["operation", "µs per operation", "/ floor"], rows, title)


def targets(bench: dict[str, Any]) -> nodes.table:
    memory = bench["memory"]
    rows = [[t["figure"], f"{t['value']:,.2f}", t["target"], _met(t)] for t in bench["targets"]]
    # Files from before memory was measured at several sizes hold the largest size only.
    at = memory.get("at") or {str(memory["tokens"]): memory}
    sizes = "; ".join(
        f"{figures['bytes_per_token']:,.0f} bytes per token at n={int(n):,}, the floor "
        f"{figures['floor_bytes_per_entry']:,.0f} bytes per entry"
        for n, figures in at.items()
    )
    return _table(["figure", "value", "target", ""], rows, f"Targets (memory: {sizes})")


def before_after(bench: dict[str, Any]) -> nodes.Element:
    before = bench.get("before")
    if before is None:
        return nodes.paragraph(
            text="No earlier run is recorded in the results file: there is nothing to compare with."
        )
    after = {t["figure"]: t for t in bench["targets"]}
    rows = []
    for item in before["figures"]:
        now = after.pop(item["figure"], None)
        rows.append(
            [
                item["figure"],
                _value(item["value"], "not measured"),
                "not run" if now is None else _value(now["value"], ""),
                item["target"],
                "" if now is None else _met(now),
            ]
        )
    rows += [  # a target the earlier run's file was not asked about
        [t["figure"], "not measured", _value(t["value"], ""), t["target"], _met(t)]
        for t in after.values()
    ]
    title = (
        f"Before and after, each figure read from its run's raw figures. Before: "
        f"{_commit(before)}, Python {before.get('python') or 'not recorded'}, "
        f"{_machine(before.get('machine'))}. After: {_commit(bench)}, Python "
        f"{bench['python']}, {_machine(bench.get('machine'))}"
    )
    return _table(["figure", "before", "after", "target", "met"], rows, title)


TABLES = {
    "one-slot": one_slot,
    "hospital": hospital,
    "targets": targets,
    "before-after": before_after,
}


class BenchmarkTable(Directive):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in TABLES:
            raise self.error(f"benchmark-table must be one of {', '.join(TABLES)}, got {name!r}")
        self.state.document.settings.env.note_dependency(str(RESULTS))  # rebuilt when it changes
        with RESULTS.open(encoding="utf-8") as file:
            bench = json.load(file)
        return [TABLES[name](bench)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
