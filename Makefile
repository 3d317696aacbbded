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

.PHONY: test book site lint unit notebooks rehearse coverage colab-check sync-url handouts otter clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

## make test: lint, unit tests, then every chapter notebook under nbmake
# Two pytest workers run side by side, each with one thread: notebook kernels are separate
# processes, so they get it from OMP_NUM_THREADS (tests/conftest.py sets it for the tests).
# Two kernels with two threads each on two cores fight over them and run several times slower.
PARALLEL := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2
# NBMAKE_FLAGS=--overwrite keeps the executed chapters' outputs in notebooks/ (CI does, in its
# throwaway clone, to build the book from them without running every chapter a second time);
# the unit tests run first, since one of them checks that the notebooks are stored without.
NBMAKE_FLAGS ?=
test: $(STAMP) lint
	$(PARALLEL) tests
	$(PARALLEL) notebooks --nbmake --nbmake-timeout=900 $(NBMAKE_FLAGS)

## make book: execute every chapter and write the site to book/_build/html
# The execution cache re-runs a chapter only when the notebook changes. It does not know about
# the helpers the chapters import, so it is dropped whenever those (or the profile) change.
CACHE_KEY := book/_build/.cache-key-$(IMGCLS_PROFILE)
BOOK_CONFIG ?= book/_config.yml
book: $(STAMP)
	@if [ ! -f $(CACHE_KEY) ] || [ -n "$$(find imgcls_helpers requirements.txt -newer $(CACHE_KEY) -print -quit)" ]; then \
		rm -rf book/_build/.jupyter_cache book/_build/.doctrees book/_build/.cache-key-*; fi
	$(BIN)/jupyter-book build -W -n --keep-going . --config $(BOOK_CONFIG) \
		--toc book/_toc.yml --path-output book
	@touch $(CACHE_KEY)
	@echo "Open book/_build/html/index.html"

## make site: the site from the outputs already stored in notebooks/, executing nothing
# (after `make test NBMAKE_FLAGS=--overwrite` in CI, or rehearsal/chapters in the publish job)
site: $(STAMP)
	mkdir -p book/_build
	sed 's/^  execute_notebooks: .*/  execute_notebooks: "off"/' book/_config.yml >book/_build/site_config.yml
	grep -q 'execute_notebooks: "off"' book/_build/site_config.yml
	$(MAKE) book BOOK_CONFIG=book/_build/site_config.yml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -x $(BIN)/actionlint ]; then $(BIN)/actionlint -shellcheck $(BIN)/shellcheck; \
	else echo "actionlint: no wheel for this platform, workflows not linted"; fi

unit: $(STAMP)
	$(PARALLEL) tests

notebooks: $(STAMP)
	$(PARALLEL) notebooks --nbmake --nbmake-timeout=900

## make rehearse: every chapter in the cpu and then the full profile, offline, against
# format-exact stand-ins of CIFAR-10, Flowers-102 and the pretrained weights, with each training
# loop cut to 1 batch (IMGCLS_FAST_DEV_RUN); fails on any offline notice, traceback or library
# warning in a chapter's output. Settings and sizes: see rehearsal/run.
rehearse: $(STAMP)
	rehearsal/run

## make coverage: line coverage of imgcls_helpers under the smoke chapters, then with the
# rehearsal added (reports in /tmp/imgcls-rehearsal/coverage-*.txt)
coverage: $(STAMP)
	rehearsal/coverage

## make colab-check: the Colab bootstrap as Colab runs it: a fresh venv with another torch than
# the pin, chapter 1's own install cell from a local clone of HEAD, torch must be kept, then
# chapter 1 in cpu against the stand-ins (first run downloads about 1.4 GB of torch wheels)
colab-check: $(STAMP)
	rehearsal/colab_bootstrap

## make sync-url: copy the repository URL from book/_config.yml into the Colab install cells
sync-url: $(STAMP)
	$(BIN)/python book/sync_repository_url.py

## make handouts: every chapter without its solutions, in handouts/labNN.ipynb
handouts: $(STAMP)
	$(BIN)/python book/make_handouts.py

## make otter: every chapter as an Otter-Grader assignment (otter/labNN: the master notebook,
# and the student notebook and Gradescope autograder zip that `otter assign` writes in dist/)
otter: $(STAMP)
	$(BIN)/python book/make_otter.py

clean:
	rm -rf book/_build .pytest_cache
