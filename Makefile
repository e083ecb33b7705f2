# Build the site and run the tests in a private virtualenv (.venv) made from
# the pinned requirements.txt.  A fresh clone needs only python3 3.11 (3.11.2,
# Debian 12's own, or newer; the pins are tested on 3.11.2 and 3.11.7): `make html` and `make test` each set up .venv if it is missing,
# and install the Debian packages they run (graphviz, socat, netcat-openbsd;
# tools/system-packages.sh) when they are missing and we are root.

# The Pythons the pins install on; checked before the venv is made, with a clear message.
PYTHON_SUPPORTED := 3.11 (3.11.2, Debian 12's own, or a later 3.11)

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# Touched once requirements.txt is installed; older than requirements.txt means "install again".
VENV_STAMP := $(VENV)/.requirements-installed

SOURCEDIR := docs
BUILDDIR := _build
SPHINXOPTS ?=
PYTESTOPTS ?=

.DEFAULT_GOAL := help
.PHONY: help venv system html test captures verify livehtml bench clean

help:
	@echo "Targets (each sets up $(VENV) from requirements.txt first, if needed):"
	@echo "  make html      build the site into $(BUILDDIR)/html (warnings are errors)"
	@echo "  make test      run the whole test suite"
	@echo "  make captures  record every run into docs/captures (ONLY=EXP or ONLY=EXP/RUN for some); commit it"
	@echo "  make verify    capture every run live and compare it with docs/captures (ONLY= too)"
	@echo "  make livehtml  serve the site, rebuilding on every change to $(SOURCEDIR)/ or examples/"
	@echo "  make bench     measure capture and build times (tools/bench.py)"
	@echo "  make clean     remove $(BUILDDIR)/ (the built site and the capture cache)"
	@echo "Variables: PYTHON=$(PYTHON) (makes the venv), SPHINXOPTS='$(SPHINXOPTS)' (e.g. -j auto), PYTESTOPTS='$(PYTESTOPTS)'"

venv: $(VENV_STAMP)

system:
	@PYTHON=$(PYTHON) tools/system-packages.sh

$(VENV_STAMP): requirements.txt
	@echo "Setting up $(VENV) from requirements.txt ..."
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11, 2) <= sys.version_info[:3] < (3, 12))' 2>/dev/null || { \
		echo "error: requirements.txt is pinned for Python $(PYTHON_SUPPORTED); $(PYTHON) is" \
			"$$($(PYTHON) --version 2>&1 || echo 'not found')." >&2; \
		echo "       Run with another one, e.g.  make PYTHON=/usr/bin/python3.11 ..." >&2; exit 1; }
	@test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	@$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check --requirement requirements.txt
	@touch $@
	@echo "$(VENV) is ready."

html: system $(VENV_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html -c . $(SPHINXOPTS) $(SOURCEDIR) $(BUILDDIR)/html

test: system $(VENV_STAMP)
	$(VENV_PYTHON) -m pytest $(PYTESTOPTS)

# The recorded evidence (docs/captures): made, and checked, by live runs (tools/captures.py).
ONLY ?=
captures: system $(VENV_STAMP)
	$(VENV_PYTHON) tools/captures.py record $(if $(ONLY),--only $(ONLY))

verify: system $(VENV_STAMP)
	$(VENV_PYTHON) tools/captures.py verify $(if $(ONLY),--only $(ONLY))

# PYTHONDONTWRITEBYTECODE: running the examples must not write __pycache__ into
# the watched examples/ folder (each write would trigger another rebuild).
livehtml: system $(VENV_STAMP)
	PYTHONDONTWRITEBYTECODE=1 $(VENV)/bin/sphinx-autobuild -c . $(SPHINXOPTS) \
		--watch examples --re-ignore '/__pycache__(/|$$)' --ignore '$(BUILDDIR)' \
		$(SOURCEDIR) $(BUILDDIR)/html

bench: system $(VENV_STAMP)
	$(VENV_PYTHON) tools/bench.py

clean:
	rm -rf $(BUILDDIR)
