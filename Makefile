# Every target sets up .venv first if it is missing or older than the package lists.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
PORT ?= 8888
ASSIGNMENT ?= 01-backprop
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

.PHONY: setup lab test lint unit nbval nbval-torch release grade bench bench-grade gpu-check clean

$(READY): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

setup: $(READY)

lab: $(READY)  ## JupyterLab on the student notebooks
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
		--ServerApp.root_dir=notebooks --ServerApp.port_retries=0

test: lint unit nbval-torch  ## the whole suite, as CI runs it (unit runs every solution once, in the mutation gate)

lint: $(READY)
	$(PY) -m ruff check .

unit: $(READY)  ## helpers, data layer, release sync, lab, grading round trips
	$(PY) -m pytest tests -v --durations=15

nbval: $(READY) nbval-torch  ## every solution notebook in the quick profile; Keras notebooks once per backend
	$(NBVAL) solutions

nbval-torch: $(READY)  ## the Keras notebooks on the torch backend (TensorFlow is Keras' default)
	$(if $(KERAS_SOLUTIONS),KERAS_BACKEND=torch $(NBVAL) $(KERAS_SOLUTIONS))

release: $(READY)  ## regenerate notebooks/ from solutions/ with nbgrader
	$(PY) -m grader.release

grade: $(READY)  ## grade a class: make grade ASSIGNMENT=01-backprop SUBMISSIONS=folder-or-zip [OUT=dir] [ARGS=...]
	$(PY) -m grader.grade $(ASSIGNMENT) $(SUBMISSIONS) $(if $(OUT),--out $(OUT)) $(ARGS)

bench: $(READY)  ## every solution notebook in the full profile, with seconds per notebook
	WORKSHOP_PROFILE=full $(PY) -m pytest --nbval-lax --nbval-cell-timeout=3600 -p no:cacheprovider solutions

bench-grade: $(READY)  ## 40 submissions: plain serial nbgrader against the sandboxed parallel grader
	$(PY) -m grader.benchmark $(ASSIGNMENT) 40

gpu-check:  ## on a CUDA machine's own Python (no .venv): the solutions within a budget, Keras on torch (docs/timings.md)
	python3 -m grader.gpu_check $(GPU_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache data/cache
