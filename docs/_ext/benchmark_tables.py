"""``.. benchmark-table:: NAME``: a table of ``docs/benchmarks.json``, as an HTML table.

NAME is ``one-slot`` (microseconds per operation by size, then the ratios and flatness),
``hospital`` (the 200-doctor hospital) or ``targets`` (every target, its value and whether
it is met). The figures are read when the docs are built, so the page always shows the
committed results file.
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
        f"{bench['python']}; flatness: n={flat['to']:,} / n={flat['from']:,})"
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
    rows = [
        [t["figure"], f"{t['value']:,.2f}", t["target"], "met" if t["met"] else "missed"]
        for t in bench["targets"]
    ]
    title = (
        f"Targets (memory: {memory['bytes_per_token']:,.0f} bytes per token at "
        f"n={memory['tokens']:,}; the floor: {memory['floor_bytes_per_entry']:,.0f} bytes "
        f"per entry)"
    )
    return _table(["figure", "value", "target", ""], rows, title)


TABLES = {"one-slot": one_slot, "hospital": hospital, "targets": targets}


class BenchmarkTable(Directive):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in TABLES:
            raise self.error(f"benchmark-table must be one of {', '.join(TABLES)}, got {name!r}")
        with RESULTS.open(encoding="utf-8") as file:
            bench = json.load(file)
        return [TABLES[name](bench)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
