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

.PHONY: test book site lint unit notebooks rehearse coverage colab-check sync-url handouts otter bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

## make test: lint, then the unit tests and every chapter notebook under nbmake, in one session
# Two pytest workers run side by side, each with one thread: notebook kernels are separate
# processes, so they get it from OMP_NUM_THREADS (tests/conftest.py sets it for the tests).
# Two kernels with two threads each on two cores fight over them and run several times slower.
# One session, so that neither worker sits idle while the other finishes a long item:
# tests/conftest.py puts the longest items first (chapters and slow tests, by measured seconds)
# and --maxschedchunk 1 deals them out one at a time.
PARALLEL := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2
# CHAPTERS: the notebooks to execute. NBMAKE_FLAGS=--overwrite keeps their outputs; CI runs
# copies that way (CHAPTERS=<folder of copies>) and builds the book from them without running
# every chapter a second time. Never overwrite notebooks/ itself here: the unit tests that run
# beside the chapters read them, and one checks that they are stored without outputs.
CHAPTERS ?= notebooks
NBMAKE_FLAGS ?=
test: $(STAMP) lint
	@if [ -n "$(findstring --overwrite,$(NBMAKE_FLAGS))" ] && [ "$(CHAPTERS)" = notebooks ]; then \
	  echo "make test: --overwrite would write into notebooks/, which the unit tests read;" \
	    "run copies instead (CHAPTERS=<folder>)" >&2; exit 2; fi
	$(PARALLEL) --maxschedchunk 1 tests $(CHAPTERS) --nbmake --nbmake-timeout=900 $(NBMAKE_FLAGS)

## make book: execute every chapter and write the site to book/_build/html
# Chapters run as in `make test`, two at a time (BOOK_JOBS) with the cores shared out between
# them: one thread each on a 2-core machine (jupyter-book's own executor runs them one after
# another and took twice as long). book/execute.py mirrors the book's sources into book/_build/src
# and executes the chapters there, as copies (notebooks/ is never written); jupyter-book then
# builds the site from that mirror with its execution off. A chapter runs again only when its
# notebook, imgcls_helpers/, requirements.txt, pyproject.toml or the profile changed; a failing
# chapter is named and fails the build. BOOK_JOBS=1: one at a time (`full` on a small GPU).
BOOK_JOBS ?= 2
BOOK_SRC := book/_build/src
# (--toc is absolute: jupyter-book reads a relative one from inside the source folder)
JUPYTER_BOOK := $(BIN)/jupyter-book build -W -n --keep-going $(BOOK_SRC) --path-output book \
	--config $(BOOK_SRC)/book/_config.yml --toc $(abspath $(BOOK_SRC))/book/_toc.yml
book: $(STAMP)
	$(BIN)/python book/execute.py --jobs $(BOOK_JOBS)
	$(JUPYTER_BOOK)
	@echo "Open book/_build/html/index.html"

## make site: the site from the outputs already stored in notebooks/, executing nothing
# (after `make test NBMAKE_FLAGS=--overwrite` in CI, or rehearsal/chapters in the publish job):
# the notebooks go into book/_build/src as they are stored, and the site is built as in make book
site: $(STAMP)
	$(BIN)/python book/execute.py --no-execute
	$(JUPYTER_BOOK)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -x $(BIN)/actionlint ]; then $(BIN)/actionlint -shellcheck $(BIN)/shellcheck; \
	else echo "actionlint: no wheel for this platform, workflows not linted"; fi

unit: $(STAMP)
	$(PARALLEL) --maxschedchunk 1 tests

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

## make bench: speed measured side by side (benchmarks/), never in the tests; results in
# benchmarks/results/<name>.json and .md. Thread settings are left as they are. Pick with
# BENCH="loaders hog"; BENCH=book times every chapter with and without OMP_NUM_THREADS=1
# (10 minutes or more, so not in the default set). BENCH_ARGS go to each, e.g. "--chapters 01".
BENCH ?= loaders fit_overhead hog augment
BENCH_ARGS ?=
bench: $(STAMP)
	@for name in $(BENCH); do $(BIN)/python -m benchmarks.$$name $(BENCH_ARGS) || exit 1; done
	@echo "Results: $(foreach name,$(BENCH),benchmarks/results/$(name).md)"

clean:
	rm -rf book/_build .pytest_cache
