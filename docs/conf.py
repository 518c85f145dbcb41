"""Sphinx configuration for opd-engine's documentation."""

from importlib.metadata import version as _version

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
