"""Checks for the graded test cells: types before values, and clear messages for unfinished exercises."""

import numpy as np


def attempt(function, *args, **kwargs):
    """Call a student's function; an exercise still raising NotImplementedError fails with a clear message."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        name = getattr(function, "__name__", repr(function))
        raise AssertionError(
            f"{name}() is not implemented yet: replace `raise NotImplementedError()` with your code."
        ) from None


def check_array(value, shape=None, name="result") -> np.ndarray:
    """Fail unless `value` is a finite floating-point NumPy array (of `shape`, if given)."""
    if type(value) is not np.ndarray:
        raise AssertionError(f"{name} should be a NumPy array, but it is a {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise AssertionError(f"{name} should hold floating-point numbers, but its dtype is {value.dtype}")
    if shape is not None and value.shape != tuple(shape):
        raise AssertionError(f"{name} should have shape {tuple(shape)}, but it has shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise AssertionError(f"{name} contains NaN or infinite values")
    return value


def check_close(value, expected, name="result", rtol=1e-6, atol=1e-8) -> None:
    """Fail unless `value` is an array of the expected shape whose entries match `expected` within tolerance."""
    expected = np.asarray(expected, dtype=float)
    value = check_array(value, expected.shape, name)
    if not np.allclose(value, expected, rtol=rtol, atol=atol):
        worst = np.max(np.abs(value - expected))
        raise AssertionError(f"{name} is off by up to {worst:.3g} (allowed: rtol={rtol:g}, atol={atol:g})")


def relative_error(a, b) -> float:
    """Largest entry-wise difference, relative to the size of the entries: max|a-b| / max(|a|+|b|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-300))
