# Every target sets up .venv first if it is missing or older than the package lists.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
# the Python that builds .venv: the pins are for 3.11
PYTHON ?= python3
PORT ?= 8888
ASSIGNMENT ?= 01-backprop
# the labs: Jupyter reads lab/ (never ~/.jupyter); lab/common puts .venv/bin first on PATH for kernels and terminals
# and names the course's exchange; each lab's own folder comes first, so its settings win
JUPYTER_LAB := $(CURDIR)/$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
	--ServerApp.port_retries=0
LAB_CONFIG = JUPYTER_CONFIG_DIR=$(CURDIR)/lab/$(1) JUPYTER_CONFIG_PATH=$(CURDIR)/lab/$(1):$(CURDIR)/lab/common
COURSE = $(abspath $(or $(OUT),graded/$(ASSIGNMENT)))/course
# nbgrader collect puts the exchange's submissions in COLLECTED/submitted/STUDENT/ASSIGNMENT/
COLLECTED ?= collected/$(ASSIGNMENT)
# nbgrader with the course's exchange (lab/common/nbgrader_config.py: WORKSHOP_COURSE_ID, WORKSHOP_EXCHANGE)
NBGRADER := JUPYTER_CONFIG_PATH=$(CURDIR)/lab/common PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(CURDIR)/$(PY) -m nbgrader
CELL_TIMEOUT ?= 600
# options of grader.gpu_check for `make gpu-check`, e.g. GPU_ARGS="--budget 300 --only 02 06"
GPU_ARGS ?=
# nbval runs JOBS notebooks at once, each kernel's maths libraries on its share of the cores
JOBS ?= 2
THREADS := $(shell n=$$(( $$(nproc) / $(JOBS) )); echo $$(( n > 0 ? n : 1 )))
SHARE := $(foreach v,OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS TF_NUM_INTRAOP_THREADS \
	TF_NUM_INTEROP_THREADS,$(v)=$(THREADS))
NBVAL := WORKSHOP_PROFILE=quick $(SHARE) $(PY) -m pytest --nbval-lax --nbval-cell-timeout=$(CELL_TIMEOUT) \
	-p no:cacheprovider -n $(JOBS) --dist loadscope
KERAS_SOLUTIONS = $(shell grep -lE '(import|from) keras' solutions/*/*.ipynb)

.PHONY: help setup lab instructor-lab test lint unit nbval nbval-torch release grade release-assignment collect return-feedback bench bench-grade gpu-check clean
.DEFAULT_GOAL := help

help:  ## this list (make TARGET runs one; every target sets up .venv first if it needs to)
	@awk -F ':.*## ' '/^[a-z-]+:.*## /{printf "  make %-19s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(READY): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
		echo "make: .venv needs Python 3.11 (requirements.txt is pinned for it), but $(PYTHON) is" \
			"$$($(PYTHON) -V 2>/dev/null || echo 'not found')." \
			"Install Python 3.11 (python.org, your package manager, pyenv or conda) and run make again" \
			"with PYTHON=python3.11 (or its full path)." >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# the UserWarning setuptools gives for every editable install of a flat layout (workshop/ at the top) is noise
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install --quiet -r requirements.txt -e .
	@# jsonschema (under nbformat, so under every nbgrader, nbclient and Jupyter process) imports rfc3987-syntax,
	@# which builds a parser at import: 1.7 s per process (python-jsonschema/jsonschema#1428). Without it
	@# jsonschema only skips the "iri" format check, which nothing here uses.
	$(PY) -m pip uninstall --quiet --yes rfc3987-syntax
	touch $@

setup: $(READY)  ## build .venv from requirements.txt (Python 3.11; PYTHON=... to choose which)

lab: $(READY)  ## JupyterLab for students: notebooks/, opens on START.ipynb; Validate, TensorBoard [PORT=8888] [ROOT=dir]
	@# the lab shows only notebooks/: links there (ignored by git) open the README, docs/ and the helper package
	@for f in README.md docs workshop; do test -e notebooks/$$f || ln -s ../$$f notebooks/$$f; done
	$(call LAB_CONFIG,student) $(JUPYTER_LAB) $(if $(ROOT),--ServerApp.root_dir=$(abspath $(ROOT)))

instructor-lab: $(READY)  ## formgrader on the course make grade wrote: make instructor-lab ASSIGNMENT=01-backprop [OUT=dir]
	@test -f $(COURSE)/gradebook.db || { echo "make: no graded course in $(COURSE); grade first:" \
		"make grade ASSIGNMENT=$(ASSIGNMENT) SUBMISSIONS=... $(if $(OUT),OUT=$(OUT))" >&2; exit 2; }
	cd $(COURSE) && PYTHONPATH=$(CURDIR) $(call LAB_CONFIG,instructor) $(JUPYTER_LAB)

test: lint unit nbval-torch  ## the whole suite (unit runs every solution once, in the mutation gate); again only what changed, unless WORKSHOP_FRESH=1

lint: $(READY)  ## ruff over the code and notebooks
	$(PY) -m ruff check .

unit: $(READY)  ## helpers, data layer, release sync, lab, grading round trips
	$(PY) -m pytest tests -v --durations=15

nbval: $(READY) nbval-torch  ## every solution notebook in the quick profile; Keras notebooks once per backend
	$(NBVAL) solutions

nbval-torch: $(READY)  ## the Keras notebooks on the torch backend (TensorFlow is Keras' default)
	$(if $(KERAS_SOLUTIONS),KERAS_BACKEND=torch $(NBVAL) $(KERAS_SOLUTIONS))

release: $(READY)  ## regenerate notebooks/ from solutions/ with nbgrader, and docs/common-mistakes.md
	$(PY) -m grader.release
	$(PY) -m grader.mistakes

grade: $(READY)  ## grade a class: make grade ASSIGNMENT=01-backprop SUBMISSIONS=folder-or-zip [OUT=dir] [ARGS=...]
	$(PY) -m grader.grade $(ASSIGNMENT) $(SUBMISSIONS) $(if $(OUT),--out $(OUT)) $(ARGS)

release-assignment: $(READY)  ## put notebooks/ASSIGNMENT in the course's exchange for students to fetch
	cd grader && $(NBGRADER) release_assignment $(ASSIGNMENT) --force

collect: $(READY)  ## the exchange's submissions into COLLECTED/submitted (then make grade SUBMISSIONS=that)
	mkdir -p $(COLLECTED)
	cd grader && $(NBGRADER) collect $(ASSIGNMENT) --update --CourseDirectory.root=$(abspath $(COLLECTED))
	@echo "Grade them: make grade ASSIGNMENT=$(ASSIGNMENT) SUBMISSIONS=$(COLLECTED)/submitted"

return-feedback: $(READY)  ## the feedback make grade wrote, into the exchange for students to fetch [OUT=dir]
	@test -d $(COURSE)/feedback || { echo "make: no feedback in $(COURSE); grade first:" \
		"make grade ASSIGNMENT=$(ASSIGNMENT) SUBMISSIONS=$(COLLECTED)/submitted $(if $(OUT),OUT=$(OUT))" >&2; exit 2; }
	cd $(COURSE) && $(NBGRADER) release_feedback $(ASSIGNMENT)

bench: $(READY)  ## every solution notebook in the full profile, with seconds per notebook
	WORKSHOP_PROFILE=full $(PY) -m pytest --nbval-lax --nbval-cell-timeout=3600 -p no:cacheprovider solutions

bench-grade: $(READY)  ## 40 submissions: plain serial nbgrader, the sandboxed parallel grader, the same on Dask
	$(PY) -m grader.benchmark $(ASSIGNMENT) 40

gpu-check:  ## on a CUDA machine's own Python (no .venv): the solutions within a budget, Keras on torch (docs/timings.md)
	python3 -m grader.gpu_check $(GPU_ARGS)

clean:  ## remove .venv, caches and downloaded data
	rm -rf $(VENV) .pytest_cache .ruff_cache data/cache
