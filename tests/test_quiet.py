"""TensorFlow's start-up messages are kept out, its real errors are not (workshop.quiet)."""

import os
import subprocess
import sys

import pytest

from workshop.quiet import filtered_stderr, shown

NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = ("I0000 00:00:1796182914.592054   12427 port.cc:153] oneDNN custom operations are on. You may see slightly "
          "different numerical results due to floating-point round-off errors from different computation orders.\n")
NO_DRIVER = ("I0000 00:00:1796182914.592901   12427 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
             "GPU will not be used.\n")
CPU_GUARD = "I0000 00:00:1796182914.643387   12427 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
NO_CUDA = ("E0000 00:00:1796182942.555139   13691 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
           "Failed call to cuInit: UNKNOWN ERROR (303)\n")
REAL_ERROR = "E0000 00:00:1796182942.6   13691 op_kernel.cc:1] Could not open /data/x: No such file\n"
START = NOTICE + ONEDNN + NO_DRIVER + CPU_GUARD + NOTICE + ONEDNN + NO_DRIVER + NO_CUDA


def test_start_up_lines_below_the_level_are_dropped_and_errors_kept():
    assert shown(START, 2) == ""
    assert shown(START + REAL_ERROR, 2) == REAL_ERROR
    assert shown(START + "a line of some other program\n", 1) == "a line of some other program\n"


def test_cuinit_is_dropped_only_where_tensorflow_found_no_cuda_driver():
    assert shown(NOTICE + NO_CUDA, 2) == NO_CUDA  # a driver is there, and CUDA failed: that matters


def test_level_0_shows_everything_and_3_hides_errors():
    assert shown(START, 0) == START
    assert shown(REAL_ERROR + "F0000 00:00:1.0 1 x.cc:1] fatal\n", 3) == "F0000 00:00:1.0 1 x.cc:1] fatal\n"


def test_lines_that_are_not_absl_records_are_kept_wherever_they_come():
    warning = "/x.py:3: DeprecationWarning: old\n  import y\n"
    assert shown(NO_DRIVER + warning + NO_CUDA, 2) == warning


def test_what_c_code_writes_on_stderr_is_caught_and_filtered(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        os.write(2, (START + REAL_ERROR).encode())
    assert capfd.readouterr().err == REAL_ERROR


@pytest.mark.parametrize("variables", [{}, {"TF_CPP_MIN_LOG_LEVEL": "0"}], ids=["default", "everything"])
@pytest.mark.parametrize("probe", ["", "importlib.util.find_spec('tensorflow'); "], ids=["import", "probe first"])
def test_importing_workshop_first_quiets_tensorflow(variables, probe):
    """Also where something only asks whether TensorFlow is there before importing it (Keras on torch does)."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | variables
    code = f"import importlib.util, workshop; {probe}import tensorflow as tf; " \
           "print(len(tf.config.list_physical_devices('CPU')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    assert run.stdout == "1\n"
    if variables:  # TF_CPP_MIN_LOG_LEVEL=0: TensorFlow's own choice, nothing hidden
        assert "oneDNN custom operations are on" in run.stderr
    else:
        assert run.stderr == ""
