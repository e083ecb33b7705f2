extensions = ["sphinx_lab"]
