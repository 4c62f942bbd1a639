# `make run`: set everything up and serve on 0.0.0.0:$${PORT:-3000} (SQLite, no Redis by default).
# `make test`: set up the same and run the whole suite over the database x cache matrix.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat requirements.txt requirements-test.txt | sha1sum | cut -c1-12)

.PHONY: run test setup deps test-deps lint typecheck bench

$(STAMP): requirements.txt
	@scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

# Test and benchmark tools, only for `make test`.
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
	@rm -f $(VENV)/.installed-test-* && touch $@

deps: $(STAMP)

test-deps: $(TEST_STAMP)

setup: deps
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py bootstrap_admin --port $${PORT:-3000}

run: setup
	exec scripts/serve.sh daphne 0.0.0.0 $${PORT:-3000}

test: test-deps
	@scripts/browser-deps.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	scripts/test-matrix.sh

lint: test-deps
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# mypy over the apps (pyproject.toml [tool.mypy]); `make test` and `make lint` run it too.
typecheck: test-deps
	$(VENV)/bin/mypy
