"""Sphinx configuration for the dmftools documentation."""

import dmftools

project = "dmftools"
author = "the dmftools developers"
release = dmftools.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
autodoc_typehints = "none"
suppress_warnings = ["myst.header"]
html_theme = "alabaster"
