# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-dev system-deps browser-deps audit docker-test docs login import accounts doctor

$(BIN)/gunicorn: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/pytest: requirements.txt requirements-dev.txt requirements-docs.txt requirements-bench.txt $(BIN)/gunicorn
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(BIN)/gunicorn

setup-dev: $(BIN)/pytest

# The servers the integration tests drive (nginx, Redis), from Debian's packages, when we may install them.
system-deps:
	@sh scripts/system-deps.sh

# playwright-core (pinned by tests/browser/package-lock.json) drives Debian's chromium in the status page test.
tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; \
	else echo "note: install node and npm to run the status page browser test" >&2; fi

browser-deps: tests/browser/node_modules/.package-lock.json tests/codex/node_modules/.package-lock.json \
	tests/claude_code/node_modules/.package-lock.json

# The Codex CLI (@openai/codex, pinned by tests/codex/package-lock.json; its native binary comes in the
# @openai/codex-linux-x64 optional dependency) for tests/codex/test_codex.py.
tests/codex/node_modules/.package-lock.json: tests/codex/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/codex --no-audit --no-fund --loglevel=error; \
	else echo "note: install node and npm to run the Codex CLI test" >&2; fi

# Claude Code (@anthropic-ai/claude-code, pinned by tests/claude_code/package-lock.json; its native binary comes in
# the @anthropic-ai/claude-code-linux-x64 optional dependency) for tests/claude_code/test_claude_code.py.
tests/claude_code/node_modules/.package-lock.json: tests/claude_code/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/claude_code --no-audit --no-fund --loglevel=error; \
	else echo "note: install node and npm to run the Claude Code test" >&2; fi

run: setup
	$(BIN)/gunicorn -c config/gunicorn.conf.py wsgi:app

# Getting an account in (docs/getting-started.md): `make login` (Builder ID; ARGS="--start-url ... --region ..."
# for IAM Identity Center), `make import SOURCE=path` (default: the IDE's token file), `make accounts`.
login: setup
	$(BIN)/python -m ki2api login $(ARGS)

import: setup
	$(BIN)/python -m ki2api import $(SOURCE)

accounts: setup
	$(BIN)/python -m ki2api accounts list

# Every check from settings to Kiro and back, one line each (docs/troubleshooting.md); ARGS=--chat, --refresh, --json.
doctor: setup
	$(BIN)/python -m ki2api doctor $(ARGS)

test: setup-dev system-deps browser-deps
	$(BIN)/python -m pytest

# pip-audit over requirements.txt where vulnerability data is reachable (else it says so and succeeds).
audit: setup-dev
	$(BIN)/python scripts/audit_deps.py

# The real image, built and started with compose against the fake Kiro (tests/docker/smoke.py); where no Docker
# engine or base image is present it says why and succeeds (tests/test_docker_config.py covers the rest).
docker-test: setup-dev
	$(BIN)/python -m tests.docker.smoke

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or anchor fails the build.
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
