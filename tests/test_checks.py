import re
import sys

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from workshop.checks import CheckFailed, attempt, check_array, check_close, relative_error, without_hidden_frames


class AlwaysEqual:
    """What a student might return to fool `==`."""

    def __eq__(self, other):
        return True

    __hash__ = None


def unfinished(x):
    raise NotImplementedError()


def test_unfinished_exercise_fails_with_a_clear_message():
    with pytest.raises(AssertionError, match=r"unfinished\(\) is not implemented yet"):
        attempt(unfinished, 1)


def test_a_failed_check_is_an_assertion_error_whose_traceback_skips_the_helpers():
    with pytest.raises(AssertionError) as caught:
        check_close(attempt(unfinished, 1), [1.0])
    assert caught.type is CheckFailed
    frames = []
    tb = without_hidden_frames(caught.value.__traceback__)
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames == [sys._getframe().f_code.co_name]  # this test's frame only: attempt's is gone


def test_an_unfinished_exercise_shows_a_short_traceback_in_a_kernel():
    """What a student sees in the notebook, and nbgrader's Validate: the test cell's line and the message."""
    cells = ["from workshop.checks import attempt, check_close\n\n\ndef sigmoid(z):\n    raise NotImplementedError()",
             "check_close(attempt(sigmoid, 0.0), 0.5, name='sigmoid(0)')",
             "check_close(0.5, 0.5, name='sigmoid(0)')",
             "%xmode --show\ncheck_close(0.5, 0.5, name='sigmoid(0)')"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, kernel_name="python3", timeout=60, allow_errors=True).execute()
    errors = [[o for o in c.outputs if o.output_type == "error"] for c in notebook.cells]
    assert not errors[0] and all(len(e) == 1 for e in errors[1:])
    unfinished, wrong_type, shown = (re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e[0].traceback)) for e in errors[1:])
    assert unfinished.splitlines()[-1] == ("CheckFailed: sigmoid() is not implemented yet: replace "
                                           "`raise NotImplementedError()` with your code.")
    assert "check_close(attempt(sigmoid, 0.0)" in unfinished
    for text in (unfinished, wrong_type):
        assert "workshop/checks.py" not in text and len(text.splitlines()) <= 8, text
    assert wrong_type.splitlines()[-1] == "CheckFailed: sigmoid(0) should be a NumPy array, but it is a float"
    assert "workshop/checks.py" in shown  # %xmode --show: every frame again


def test_attempt_passes_results_and_other_errors_through():
    assert attempt(lambda x: x + 1, 1) == 2
    with pytest.raises(ZeroDivisionError):
        attempt(lambda: 1 / 0)


@pytest.mark.parametrize("value", [AlwaysEqual(), [1.0, 2.0], np.array([1, 2]), np.float64(1.0)])
def test_types_are_checked_before_values(value):
    with pytest.raises(AssertionError):
        check_close(value, [1.0, 2.0])


def test_shape_and_finiteness_are_checked():
    with pytest.raises(AssertionError, match="shape"):
        check_array(np.zeros(3), shape=(3, 1))
    with pytest.raises(AssertionError, match="NaN"):
        check_array(np.array([1.0, np.nan]))


def test_check_close_reports_the_size_of_the_error():
    check_close(np.array([1.0, 2.0 + 1e-9]), [1.0, 2.0])
    with pytest.raises(AssertionError, match="off by up to 0.1"):
        check_close(np.array([1.0, 2.1]), [1.0, 2.0])


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0], [3.0]) == pytest.approx(0.5)
    assert relative_error([0.0], [0.0]) == 0.0
