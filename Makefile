# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := app tests $(wildcard bench) $(wildcard scripts) $(wildcard tools)

.PHONY: demo test test-fast lint fmt bench install clean messages screenshots deploy-check

# requirements.lock: what `serve` needs (the Dockerfile installs only it); requirements-demo.lock:
# the sandbox AWS of `demo` and the tests (moto, Flask: the `demo` extra); requirements-dev.lock:
# the test and lint tools.
$(STAMP): pyproject.toml requirements.lock requirements-demo.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock -r requirements-demo.lock \
		-r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Run the portal on its embedded default: sandbox AWS + throwaway SQLite.
demo: $(STAMP)
	$(BIN)/iam-onboard demo $(ARGS)

# pytest-xdist runs the tests in PYTEST_WORKERS processes (auto: one per CPU; 0 runs them in
# this process, e.g. for pdb). loadfile gives each test file to one worker whole, so a
# module-scoped fixture (a demo process, a built wheel, a sandbox of its own) is set up once;
# each worker starts its slow tests first (tests/conftest.py).
PYTEST_WORKERS ?= auto
# Bytecode caches on even where the environment turns them off (PYTHONDONTWRITEBYTECODE=1):
# without them each worker rewrites the assertions of every test module again, ~6 s of CPU.
XDIST := -n $(PYTEST_WORKERS) --dist loadfile
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

## Run the whole test suite (PostgreSQL tests run when IAM_ONBOARD_TEST_POSTGRES_URL is set).
test: $(STAMP)
	$(PYTEST) $(XDIST) $(PYTEST_ARGS)

## The edit loop: everything but the slow, browser, fault and PostgreSQL tests (README).
test-fast: $(STAMP)
	$(PYTEST) $(XDIST) \
		-m "not slow and not browser and not faults and not postgres" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

## Re-extract every translatable text into app/locale/messages.pot and merge it into the Korean
## catalog (the app reads the .po files directly; there is no compile step).
messages: $(STAMP)
	mkdir -p app/locale
	$(BIN)/pybabel --quiet extract -F babel.cfg -k _ -k N_ -k gettext -k ngettext:1,2 \
		--add-location=file --sort-output --project=iam-onboard -o app/locale/messages.pot .
	$(BIN)/pybabel --quiet update --init-missing --no-fuzzy-matching --ignore-obsolete \
		-i app/locale/messages.pot -d app/locale -l ko

## PNGs of the main pages in English and Korean (docs/screenshots, or ARGS=OUTDIR), taken from a
## throwaway demo in Debian's Chromium; the Korean pages need a Korean font (fonts-nanum).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py $(ARGS)

## cfn-lint and checkov on deploy/, hadolint and checkov on the Dockerfile, and the Dockerfile's
## install steps in a fresh venv; the linters live in .venv-deploy (tools/deploy-check.lock).
deploy-check:
	PYTHON=$(PYTHON) tools/deploy-check.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-deploy .pytest_cache .mypy_cache .ruff_cache
