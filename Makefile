# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-dev system-deps

$(BIN)/gunicorn: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/pytest: requirements.txt requirements-dev.txt $(BIN)/gunicorn
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(BIN)/gunicorn

setup-dev: $(BIN)/pytest

# The servers the integration tests drive (nginx, Redis), from Debian's packages, when we may install them.
system-deps:
	@sh scripts/system-deps.sh

run: setup
	$(BIN)/gunicorn -c config/gunicorn.conf.py wsgi:app

test: setup-dev system-deps
	$(BIN)/python -m pytest
