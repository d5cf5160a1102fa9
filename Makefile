# Two commands for a fresh machine (see README):
#   make quickstart   install, then run the main job and write its figures to runs/figures/
#   (make figures     refresh the committed figures/ on purpose: every notebook in full mode, the
#                     paper's figures and tables (python -m cdae figures), and the browser test's
#                     screenshot of the explorer)
#   make test         install, then run the whole test suite (unit tests + every notebook via nbval)
#
# torch is installed first and pinned, so that pip never resolves an unpinned torch to a
# multi-gigabyte CUDA build. Override TORCH_SPEC / TORCH_PIP_ARGS for other platforms, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: install quickstart test lint figures site clean-data

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks,docs]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/python -m cdae quickstart

# the notebooks run in smoke mode under the tests (small loops, nothing skipped); CDAE_SMOKE=0
# runs them in full mode. One intra-op thread per process: the PYTEST_WORKERS workers (and the
# notebook kernels they start) already fill the cores, and more busy threads than cores make
# PyTorch's spinning threads wait on each other (measured on 2 cores: the suite took 16.5 min
# with all threads per process and 3.3 min with one; notebook 11's sweep cell 388 s and 27 s)
test: install
	CDAE_SMOKE=$${CDAE_SMOKE:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} \
		$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope \
		--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1200 \
		--durations 15

# the course as a static site, runs/site/html/index.html: every notebook in full mode
# (CDAE_SMOKE=0), rendered from its executed copy in runs/notebooks/ when `make figures` or the
# quickstart left one of the same code and mode, else executed by myst-nb, whose cache
# (runs/site/jupyter_cache/) runs a notebook again only when its code changed
site: install
	CDAE_SMOKE=$${CDAE_SMOKE:-0} $(BIN)/python -m sphinx -E -b html -d runs/site/doctrees \
		docs runs/site/html
	@echo "the site: $(CURDIR)/runs/site/html/index.html"

lint: install
	$(BIN)/ruff check cdae tests benchmarks notebooks
	$(BIN)/nbstripout --keep-count --verify notebooks/*.ipynb

figures: install
	CDAE_FIGURES_DIR=$(CURDIR)/figures $(BIN)/python -m cdae figures --notebooks
	CDAE_FIGURES_DIR=$(CURDIR)/figures $(BIN)/python -m pytest -q tests/test_browser.py
