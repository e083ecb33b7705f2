"""Sphinx configuration for the close() vs shutdown() site.

The pages live in docs/; this file sits at the top so that the examples/ and
sphinx_lab/ folders beside it are found without path tricks:

    sphinx-build -W -b html -c . docs _build/html      (what `make html` runs)
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "examples")]

project = "close() vs shutdown()"
author = "The close() vs shutdown() authors"
copyright = "2026, " + author
language = "en"

extensions = [
    "myst_parser",
    "sphinx_tabs.tabs",
    "sphinx_lab",  # runs examples/ and puts what happened into the pages
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "note-output"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every reference must resolve: a dangling one fails the -W build.
nitpicky = True

# Furo: light and dark (following the reader's system, or their choice), and a
# layout that works on a phone; the diagrams are drawn for both (lab.css).
html_theme = "furo"
html_title = project
html_static_path = ["docs/_static"]  # relative to this file
html_css_files = ["lab.css"]

# The sequence and state diagrams: drawn by Graphviz at build time, as SVG so
# they stay sharp at any size (sphinx.ext.graphviz, set up by sphinx_lab).
graphviz_output_format = "svg"

# The lab (sphinx_lab): captures are cached outside the source tree, next to
# the output folder, keyed by the content of everything a capture depends on.
lab_examples_dir = str(HERE / "examples")
