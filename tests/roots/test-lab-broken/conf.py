extensions = ["sphinx_lab"]
lab_examples_dir = "examples"  # a test-only examples folder with a client that crashes
