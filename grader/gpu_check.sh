#!/usr/bin/env bash
# `make gpu-check` on the lent CUDA machine, in one command. Its python3 has PyTorch with CUDA but no Jupyter or
# Keras, and no network: the packages travel as wheels, made here by `bash ../shared/gpu/wheels.sh .whl` and
# carried as .whl (docs/timings.md, GPU). Arguments go to python -m grader.gpu_check (default: a 480 s budget).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -m ipykernel install --user --name python3 >/dev/null
if command -v make >/dev/null; then
    make gpu-check GPU_ARGS="$*"
else  # the same target, should the image lack make
    python3 -m grader.gpu_check "$@"
fi
