"""Sphinx configuration for opd-engine's documentation."""

from __future__ import annotations

import glob
import importlib
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from importlib.metadata import version as _version
from pathlib import Path

from docutils.nodes import Element
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext import intersphinx

import opd_engine

# The how-to pages' doctests import the recipes in docs/examples, as a reader would.
sys.path.insert(0, str(Path(__file__).resolve().parent / "examples"))

project = "opd-engine"
author = "opd-engine developers"
copyright = "2026, opd-engine developers"
release = _version("opd-engine")
version = ".".join(release.split(".")[:2])

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

extensions = [
    "benchmark_tables",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "matplotlib.sphinxext.plot_directive",
]

plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

html_theme = "furo"
html_title = f"opd-engine {release}"
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
doctest_global_setup = ""

# Every cross-reference must resolve: a broken link is a warning, and CI builds with -W.
nitpicky = True
nitpick_ignore: list[tuple[str, str]] = [
    # The row types a SimulationResult is built from appear in its constructor's signature
    # (simulate() builds it; nobody else calls it); they are not public.
    ("py:class", "Refusal"),
    ("py:class", "DoctorDay"),
    # categorise() returns the type it is given (a pandas DataFrame, which the library does
    # not import): a private type variable.
    ("py:class", "opd_engine.simulation._records.F"),
]
nitpick_ignore_regex: list[tuple[str, str]] = []

# -- Intersphinx, without the network -------------------------------------------------------
#
# The docs are built where only package registries can be reached, so intersphinx never
# downloads an inventory: it reads each one from a file that a package ships. Debian's
# python3-doc, python-attr-doc and python-pandas-doc install them under /usr/share/doc; CI
# unpacks the same three files from those packages into a folder and names it in
# OPD_ENGINE_INVENTORIES (python.inv, attrs.inv, pandas.inv), which replaces the system
# folders. Links go to the documentation of the version the inventory describes, so every
# link lands on the page the inventory was made from. A project whose inventory is missing
# is not linked: its references stay plain text, and nitpick_ignore_regex below covers them.
_INVENTORY_FOLDER = os.environ.get("OPD_ENGINE_INVENTORIES")


def _attrs_version(number: str) -> str:
    # attrs' inventories say "22.2" where its documentation's versions are "22.2.0".
    return number if number.count(".") == 2 else f"{number}.0"


#: project -> (file in OPD_ENGINE_INVENTORIES, Debian's files, documentation root for the
#: inventory's version, the targets that stay plain text without the inventory)
_INVENTORIES: dict[str, tuple[str, str, Callable[[str], str], str]] = {
    "python": (
        "python.inv",
        "/usr/share/doc/python3*/html/objects.inv",
        lambda number: f"https://docs.python.org/{number}/",
        "|".join(sorted(sys.stdlib_module_names)),
    ),
    "attrs": (
        "attrs.inv",
        "/usr/share/doc/python-attr-doc/html/objects.inv",
        lambda number: f"https://www.attrs.org/en/{_attrs_version(number)}/",
        "attrs?",
    ),
    "pandas": (
        "pandas.inv",
        "/usr/share/doc/python-pandas-doc/html/objects.inv",
        lambda number: f"https://pandas.pydata.org/pandas-docs/version/{number}/",
        "pandas",
    ),
}


def _inventory_version(path: str) -> str:
    """The ``# Version:`` line of an objects.inv."""
    with open(path, "rb") as inv:
        head = inv.read(200).decode("utf-8", "replace")
    found = re.search(r"^# Version: (\S+)", head, re.MULTILINE)
    if found is None:
        raise ValueError(f"{path} is not a Sphinx inventory: it names no version")
    return found.group(1)


def _find_inventory(name: str, pattern: str) -> str | None:
    if _INVENTORY_FOLDER is not None:
        path = Path(_INVENTORY_FOLDER, name)
        return str(path) if path.is_file() else None
    found = sorted(glob.glob(pattern), key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    return found[-1] if found else None


intersphinx_mapping: dict[str, tuple[str, str]] = {}
for _project, (_name, _pattern, _root, _targets) in _INVENTORIES.items():
    _path = _find_inventory(_name, _pattern)
    if _path is None:
        nitpick_ignore_regex.append((r"py:.*", rf"({_targets})(\..*)?"))
    else:
        intersphinx_mapping[_project] = (_root(_inventory_version(_path)), _path)


# -- Public paths ---------------------------------------------------------------------------
#
# Public classes say ``__module__ == "opd_engine"`` (see the package's __init__), and doctests
# see them so. Sphinx reads a class's source from the module that ``__module__`` names (for
# the order of members, ``#:`` comments, ``@final`` and the [source] links), so for every
# other builder each class names the module that defines it again. The reference documents
# it at ``opd_engine.*`` all the same, and autodoc records the private path as its canonical
# name, so a base or a type hint that names the private path links to that entry.


def _defining_modules() -> dict[object, str]:
    """Each public class and function of the facade -> the private module that defines it
    (the one whose ``__all__`` names it, or, for a function, whose file holds its code)."""
    where: dict[object, str] = {}
    for info in pkgutil.iter_modules(opd_engine.__path__, "opd_engine."):
        if info.ispkg or info.name == "opd_engine.__main__":
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) == "opd_engine":
                where[obj] = info.name
        for obj in vars(module).values():  # functions of a module without __all__
            code = getattr(obj, "__code__", None)
            public = getattr(obj, "__module__", None) == "opd_engine"
            if public and code is not None and code.co_filename == module.__file__:
                where[obj] = info.name
    return where


def _show_sources(app: Sphinx) -> None:
    """Every builder but doctest reads each public class's source where it is written."""
    if app.builder.name != "doctest":
        for obj, module in _defining_modules().items():
            obj.__module__ = module


def _qualify_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element
) -> Element | None:
    """Give a name written without its module its full name, then look again: a public name
    of the package (``Allocator.delay`` in a docstring of ``opd_engine.simulation``), or what
    the module that wrote the annotation imports under that name (``datetime`` in an attrs
    class's ``Callable[[], datetime]``, which attrs' generated ``__init__`` leaves a string).
    Runs after the Python domain and intersphinx found nothing."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target:
        return None
    head, _, rest = target.partition(".")
    if head in opd_engine.__all__:
        full = f"opd_engine.{target}"
    else:
        module = sys.modules.get(node.get("py:module") or "")
        context = getattr(module, (node.get("py:class") or "").split(".")[0], None)
        written_in = sys.modules.get(getattr(context, "__module__", ""))
        named = getattr(written_in, head, None)
        if not isinstance(named, type):
            return None
        full = ".".join(part for part in (named.__module__, named.__qualname__, rest) if part)
    found = env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], full, node, contnode
    )
    if found is None:
        node["reftarget"] = full
        found = intersphinx.missing_reference(app, env, node, contnode)
    return found


# Napoleon reads "Tokens holding a place: booked, ..." at the start of a property's or an
# attribute's docstring as "type: description"; here those docstrings are sentences (the
# types come from the annotations), so they are kept as written.
_PLAIN = {"attribute", "property", "data"}
_WRITTEN: dict[str, list[str]] = {}


def _keep_written(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    if what in _PLAIN:
        _WRITTEN[name] = list(lines)


def _restore_written(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    if what in _PLAIN and name in _WRITTEN:
        lines[:] = _WRITTEN.pop(name)


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _show_sources)
    app.connect("missing-reference", _qualify_reference, priority=900)  # after intersphinx
    app.connect("autodoc-process-docstring", _keep_written, priority=400)
    app.connect("autodoc-process-docstring", _restore_written, priority=600)
