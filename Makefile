# mmcourse: two commands for a newcomer, `make lab` and `make test`; the rest are for maintainers.
# VENV=/path/to/env points every target at an existing environment instead of ./.venv.
# PYTHON picks the interpreter for a new venv (3.10-3.13); scripts/setup.sh explains the
# other setup choices (INSTALLER=uv|pip, TORCH_SPEC, TORCH_INDEX_URL).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmcourse-installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.py))
# The Chinese edition: generated notebooks (no .py pair) from the catalogs in notebooks/locale/
# (mmcourse.tools.translations); only the notebooks whose catalog exists are translated.
ZH_NOTEBOOKS := $(sort $(wildcard notebooks/zh_CN/[0-9][0-9]_*.ipynb))
# Under nbval: every English notebook and the Chinese 00 (the others share its code and outputs).
NBVAL_NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)) $(wildcard notebooks/zh_CN/00_*.ipynb)
# Offline and CPU: no hub downloads, two threads like the course machines.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0
# Let idle OpenMP threads sleep instead of spinning: on a busy 2-core machine (a kernel next to
# JupyterLab and Chromium) spinning threads made small-model training 10-20x slower.
export OMP_WAIT_POLICY := PASSIVE
export PYTHON VENV

.PHONY: help setup lab sync sync-check execute translations student site weights weights-check bench test test-fast test-notebooks test-browser test-install clean

help:
	@echo "make lab         set up if needed, then open JupyterLab on notebooks/"
	@echo "make test        set up if needed, then run every check (unit, sync, notebooks, student, browser)"
	@echo "make test-fast   unit tests without the slow re-measurements (about a minute)"
	@echo "make sync        pair notebooks/NN_topic.py with NN_topic.ipynb (jupytext)"
	@echo "make execute     re-run every notebook and store its outputs in the .ipynb"
	@echo "make translations update the catalogs (notebooks/locale/) and regenerate notebooks/zh_CN/"
	@echo "make student     write student notebooks (solutions stripped) to build/student/ (Chinese: build/student/zh_CN/)"
	@echo "make site        build the course website from the executed notebooks into build/site/"
	@echo "make weights     retrain the shipped checkpoints and update the sha256 registry"
	@echo "make weights-check measure every shipped checkpoint again on fresh draws; fails beyond 3 s.e. or a target"
	@echo "make bench       speed and quality tables"
	@echo "make test-install fresh-clone installs on each Python found (minutes; CI runs it)"
	@echo "make clean       remove build/ and caches (keeps the venv)"

# Installs once, again when the dependency files change: checks $(PYTHON), installs torch alone
# (the CPU build), then the rest pinned by constraints.txt (see scripts/setup.sh).
$(STAMP): pyproject.toml constraints.txt scripts/setup.sh tests/_torchvision_compat.py
	scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

sync: setup
	$(VENV)/bin/jupytext --sync $(NOTEBOOKS)

# Fails when a .py and its .ipynb disagree (tracked files only: run after committing).
sync-check: setup
	$(VENV)/bin/jupytext --sync $(NOTEBOOKS)
	@git diff --exit-code -- notebooks/ || (echo "notebook pairs out of sync: run 'make sync' (or 'make execute') and commit" && exit 1)

# scripts/lab.sh adds --allow-root only as root, --no-browser only without a display.
lab: sync
	scripts/lab.sh $(LAB_ARGS)

execute: setup
	$(PY) -m mmcourse.tools.execute $(NOTEBOOKS)

# Catalogs take the English Markdown cells (a changed cell becomes fuzzy), then the Chinese
# notebooks are written from the English .ipynb and the catalogs (nothing executed).
translations: setup
	$(PY) -m mmcourse.tools.translations update
	$(PY) -m mmcourse.tools.translations build

student: setup
	$(PY) -m mmcourse.tools.student $(NOTEBOOKS) --out build/student
	$(if $(ZH_NOTEBOOKS),$(PY) -m mmcourse.tools.student $(ZH_NOTEBOOKS) --out build/student/zh_CN --nbgrader build/nbgrader/zh_CN)

# The website (site/build.py): Sphinx + MyST-NB over the committed .ipynb, no execution; the
# browser libraries come once from the npm registry (needs npm), pinned in site/vendor.json.
site: setup
	$(PY) site/build.py

weights: setup
	$(PY) -m mmcourse.weights.build all

# No retraining: each checkpoint's evaluator on the protocol's "check" draws, one thread, nice
# (`make test` runs the foundation's part of it; .ci/run runs all of it).
weights-check: setup
	nice -n 5 $(PY) -m mmcourse.weights.check

bench: setup
	$(PY) -m bench

test-fast: setup
	$(PY) -m pytest -q -rs -m "not browser and not slow and not install" tests

test-notebooks: setup
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(NBVAL_NOTEBOOKS)

# -rs: a skipped browser test says why (no /usr/bin/chromium) and how to install it.
# nice: beside nbval in `make test`, the notebooks whose time is budgeted get the CPU first
# (JupyterLab's kernels and Chromium inherit the lower priority; alone it changes nothing).
test-browser: setup
	nice -n 10 $(PY) -m pytest -q -rs -m browser tests

# Real installs in fresh clones (minutes): run by .ci/run as a step of its own.
test-install: setup
	$(PY) -m pytest -q -rs -m install tests

# The notebooks under nbval and the browser test run side by side: each notebook kernel trains on
# one thread, so on two cores the pair takes about as long as the browser test alone, and the
# browser test runs at a lower priority so the budgeted nbval times stay close to a run alone
# (measured without it: 04_clip 101 s beside the browser test against 75 s alone). Each prints
# its output when it finishes (--output-sync).
test: setup sync-check
	$(PY) -m pytest -q -rs -m "not browser and not install" tests
	@echo "== notebooks (nbval) and browser test side by side; each shows its output when done"
	@echo "machine speed measured alone first (the notebooks' budget scales with it; beside the browser test it would read slower)"
	step=$$($(PY) -m mmcourse.tools.calibrate --ms) && echo "ViT step: $$step ms" && \
	MMCOURSE_STEP_MS=$$step $(MAKE) --no-print-directory -j2 --output-sync=target test-notebooks test-browser

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
