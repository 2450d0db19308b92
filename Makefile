# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT
VAR_DIR ?= var

.PHONY: run test install lint typecheck pytest clean tools constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt pins every package to the versions CI tested, so a fresh machine gets them.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Re-resolve pyproject.toml's dependencies in a throwaway venv and pin what it got.
LOCK_VENV := var/constraints-venv
constraints:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf $(LOCK_VENV)

# This checkout is a development install: settings read var/env under the environment, so
# manage.py typed by hand gets what `make run` gets (and the same generated var/secret_key).
$(VAR_DIR)/env:
	mkdir -p $(VAR_DIR)
	(umask 077 && printf '%s\n' \
	  '# Written by the first `make run`: settings for this local install, read under the' \
	  '# environment (a variable set there wins). A production machine has no such file.' \
	  'DEBUG=true' > $@)

run: install $(VAR_DIR)/env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	DEBUG=true $(BIN)/mypy .

# The suite drives Debian's Chromium and runs curl, wget and openssl as a user would.
TOOLS := chromium curl wget openssl
tools:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing$$missing from Debian's packages"; \
	    apt-get update -qq && apt-get install -y -qq$$missing >/dev/null; \
	  else \
	    echo "make test needs$$missing: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# pytest-xdist: a worker per core, at most two (tests also start servers and Celery workers);
# PYTEST_WORKERS= runs the suite in one process.
PYTEST_WORKERS ?= -n auto --maxprocesses=2
pytest: install tools
	$(BIN)/pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) var
