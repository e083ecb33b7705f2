extensions = ["myst_parser", "sphinx_lab"]
myst_enable_extensions = ["colon_fence"]  # a claim with `code` cannot sit on a backtick fence's line
