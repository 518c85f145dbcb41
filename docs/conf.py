"""Sphinx configuration for opd-engine's documentation."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import version as _version

from sphinx.application import Sphinx

import opd_engine

project = "opd-engine"
author = "opd-engine developers"
copyright = "2026, opd-engine developers"
release = _version("opd-engine")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
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
    (the one whose ``__all__`` names it)."""
    where: dict[object, str] = {}
    for info in pkgutil.iter_modules(opd_engine.__path__, "opd_engine."):
        if info.ispkg or info.name == "opd_engine.__main__":
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) == "opd_engine":
                where[obj] = info.name
    return where


def _show_sources(app: Sphinx) -> None:
    """Every builder but doctest reads each public class's source where it is written."""
    if app.builder.name != "doctest":
        for obj, module in _defining_modules().items():
            obj.__module__ = module


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _show_sources)
