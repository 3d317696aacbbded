# Two commands for a fresh machine (only Python 3.11 needed): `make test` and `make book`.
# Both create .venv and install requirements.txt on first use (again when it changes).
# Chapters run in the `smoke` profile unless you say otherwise: make book IMGCLS_PROFILE=full

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export IMGCLS_PROFILE ?= smoke
# Progress bars are for people watching; in tests and the built book they are noise.
export TQDM_DISABLE ?= 1

.PHONY: test book lint unit notebooks sync-url handouts clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

## make test: lint, unit tests, then every chapter notebook under nbmake
# Two pytest workers run side by side, each with one thread: notebook kernels are separate
# processes, so they get it from OMP_NUM_THREADS (tests/conftest.py sets it for the tests).
# Two kernels with two threads each on two cores fight over them and run several times slower.
PARALLEL := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2
test: $(STAMP) lint
	$(PARALLEL) tests notebooks --nbmake --nbmake-timeout=900

## make book: execute every chapter and write the site to book/_build/html
# The execution cache re-runs a chapter only when the notebook changes. It does not know about
# the helpers the chapters import, so it is dropped whenever those (or the profile) change.
CACHE_KEY := book/_build/.cache-key-$(IMGCLS_PROFILE)
book: $(STAMP)
	@if [ ! -f $(CACHE_KEY) ] || [ -n "$$(find imgcls_helpers requirements.txt -newer $(CACHE_KEY) -print -quit)" ]; then \
		rm -rf book/_build/.jupyter_cache book/_build/.doctrees book/_build/.cache-key-*; fi
	$(BIN)/jupyter-book build -W -n --keep-going . --config book/_config.yml \
		--toc book/_toc.yml --path-output book
	@touch $(CACHE_KEY)
	@echo "Open book/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(PARALLEL) tests

notebooks: $(STAMP)
	$(PARALLEL) notebooks --nbmake --nbmake-timeout=900

## make sync-url: copy the repository URL from book/_config.yml into the Colab install cells
sync-url: $(STAMP)
	$(BIN)/python book/sync_repository_url.py

## make handouts: every chapter without its solutions, in handouts/labNN.ipynb
handouts: $(STAMP)
	$(BIN)/python book/make_handouts.py

clean:
	rm -rf book/_build .pytest_cache
