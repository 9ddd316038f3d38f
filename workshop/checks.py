"""Checks for the graded test cells: types before values, and clear messages for unfinished exercises.

A failed check raises CheckFailed, an AssertionError whose traceback in IPython (a notebook, nbgrader's
Validate) leaves out the frames of these helpers, which set `__tracebackhide__`: a student sees the test cell's
line and the message, not the inside of the helpers. `%xmode --show` shows every frame again.
"""

from types import TracebackType

import numpy as np


class CheckFailed(AssertionError):
    """A check of a graded cell failed; the message says why and what to do."""

    def _render_traceback_(self):
        """IPython's traceback of this failure, without the frames that set `__tracebackhide__` (IPython itself
        would still show the innermost one, where the helper raised)."""
        from IPython import get_ipython

        formatter = get_ipython().InteractiveTB
        tb = without_hidden_frames(self.__traceback__) if formatter.skip_hidden else self.__traceback__
        return formatter.structured_traceback(type(self), self, tb)


def without_hidden_frames(tb: TracebackType | None) -> TracebackType | None:
    """A copy of the traceback `tb` without the frames whose `__tracebackhide__` is True."""
    kept = []
    while tb is not None:
        if tb.tb_frame.f_locals.get("__tracebackhide__") is not True:
            kept.append(tb)
        tb = tb.tb_next
    copy = None
    for entry in reversed(kept):
        copy = TracebackType(copy, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return copy


def attempt(function, *args, **kwargs):
    """Call a student's function; an exercise still raising NotImplementedError fails with a clear message."""
    __tracebackhide__ = True
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        name = getattr(function, "__name__", repr(function))
        raise CheckFailed(
            f"{name}() is not implemented yet: replace `raise NotImplementedError()` with your code."
        ) from None


def check_array(value, shape=None, name="result") -> np.ndarray:
    """Fail unless `value` is a finite floating-point NumPy array (of `shape`, if given)."""
    __tracebackhide__ = True
    if type(value) is not np.ndarray:
        raise CheckFailed(f"{name} should be a NumPy array, but it is a {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise CheckFailed(f"{name} should hold floating-point numbers, but its dtype is {value.dtype}")
    if shape is not None and value.shape != tuple(shape):
        raise CheckFailed(f"{name} should have shape {tuple(shape)}, but it has shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise CheckFailed(f"{name} contains NaN or infinite values")
    return value


def check_close(value, expected, name="result", rtol=1e-6, atol=1e-8) -> None:
    """Fail unless `value` is an array of the expected shape whose entries match `expected` within tolerance."""
    __tracebackhide__ = True
    expected = np.asarray(expected, dtype=float)
    value = check_array(value, expected.shape, name)
    if not np.allclose(value, expected, rtol=rtol, atol=atol):
        worst = np.max(np.abs(value - expected))
        raise CheckFailed(f"{name} is off by up to {worst:.3g} (allowed: rtol={rtol:g}, atol={atol:g})")


def relative_error(a, b) -> float:
    """Largest entry-wise difference, relative to the size of the entries: max|a-b| / max(|a|+|b|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-300))
