import numpy as np
import pytest

from workshop.checks import attempt, check_array, check_close, relative_error


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
