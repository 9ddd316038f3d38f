"""Hidden checks that a submission cannot forge: probes hand out plain data, checks decide elsewhere.

In a source notebook (solutions/), the hidden part of a graded test cell holds exactly three things:

    ### BEGIN HIDDEN TESTS
    def probe():
        # Runs in the student's kernel after their whole notebook: calls their functions and objects on
        # hidden inputs and returns plain data (numbers, strings, NumPy arrays, lists and dicts of them).
        return {"z": sigmoid_prime(np.linspace(-3, 3, 7))}


    def check(got, want):
        # Runs in the grader's own process, where no student code has run: `got` is what the student's
        # probe returned, `want` what the solution's returned on the same inputs. Raise to fail.
        check_close(got["z"], want["z"], name="sigmoid_prime(z)")


    workshop.hidden_checks(probe, check)
    ### END HIDDEN TESTS

A check sees only CHECK_GLOBALS (NumPy as np, the checks of workshop.checks) and what it imports itself; its
constants and bars come from `want`, never from `got`. In the solution notebook `hidden_checks` runs the
check on the probe's own data, so CI proves every check passes on the solution. When grading, the test cells
run without their hidden part, the probes run after every other cell, and only their data leaves the sandbox.
"""

import base64
import math

import numpy as np

from workshop import checks

MIME = "application/vnd.workshop.probe+json"
DTYPES = ("float64", "float32", "int64", "int32", "uint8", "bool")
MAX_DEPTH = 32
CHECK_GLOBALS = {"np": np, "math": math, **{name: getattr(checks, name) for name in
                                           ("attempt", "check_array", "check_close", "relative_error")}}


class Malformed(ValueError):
    """Probe data that is not plain data of the allowed kinds."""


def encode(value, depth: int = 0):
    """Plain data as JSON-ready values; NumPy arrays become {"__array__": dtype, "shape", "data": base64}."""
    if depth > MAX_DEPTH:
        raise Malformed("nested too deeply")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if array.dtype.name not in DTYPES:
            array = array.astype(np.float64)
        return {"__array__": array.dtype.name, "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode()}
    if isinstance(value, list | tuple):
        return [encode(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item, depth + 1) for key, item in value.items()}
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return encode(value.detach().cpu().numpy(), depth)
    if hasattr(value, "numpy"):  # a TensorFlow tensor
        return encode(np.asarray(value.numpy()), depth)
    raise Malformed(f"a probe may return numbers, strings, arrays, lists and dicts, not {type(value).__name__}")


def decode(value, depth: int = 0):
    """The inverse of encode(), for JSON that anyone may have written: anything else raises Malformed."""
    if depth > MAX_DEPTH:
        raise Malformed("nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [decode(item, depth + 1) for item in value]
    if type(value) is not dict:
        raise Malformed(f"unexpected {type(value).__name__}")
    if "__array__" not in value:
        return {str(key): decode(item, depth + 1) for key, item in value.items()}
    if set(value) != {"__array__", "shape", "data"} or value["__array__"] not in DTYPES:
        raise Malformed("an array with unexpected fields or dtype")
    shape = value["shape"]
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise Malformed("an array with a malformed shape")
    try:
        raw = base64.b64decode(value["data"], validate=True)
    except (TypeError, ValueError) as error:
        raise Malformed("an array whose data is not base64") from error
    dtype = np.dtype(value["__array__"])
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise Malformed("an array whose data does not fill its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def run_probe(probe):
    """A probe's result as {"data": ...}, or {"error": why} if it raised or returned something not plain."""
    try:
        return {"data": encode(probe())}
    except NotImplementedError:
        return {"error": "an exercise it uses still raises NotImplementedError"}
    except Exception as error:  # noqa: BLE001 - any failure of the student's code is the probe's result
        return {"error": f"{type(error).__name__}: {error}"[:1000]}


def emit(grade_id: str, probe) -> None:
    """Run `probe` and display its data for the grader (the last cells of a graded run call this)."""
    from IPython.display import display

    display({MIME: {"grade_id": grade_id, **run_probe(probe)}}, raw=True)


def trusted(check):
    """`check` with CHECK_GLOBALS as its globals, as the grader runs it (never the notebook's names)."""
    import builtins
    import types

    return types.FunctionType(check.__code__, {**CHECK_GLOBALS, "__builtins__": builtins}, check.__name__,
                              check.__defaults__, check.__closure__)


def hidden_checks(probe, check) -> None:
    """In a source notebook: the check on the probe's own data, through the same encoding as in grading."""
    result = run_probe(probe)
    if "error" in result:
        raise AssertionError(f"the probe failed: {result['error']}")
    trusted(check)(decode(result["data"]), decode(result["data"]))  # two copies: a check may change one
