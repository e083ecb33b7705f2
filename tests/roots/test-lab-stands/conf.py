extensions = ["myst_parser", "sphinx_lab"]
