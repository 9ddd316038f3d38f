"""Branches: the mutation gate's stopped submissions run in shared kernels (grader.grade with `share`).

A stopped submission (grade's `stop_after`) differs from the solution in one exercise's answer cell and runs only
up to that exercise's tests. In a kernel of its own it would repeat everything before that cell. Here one kernel,
the *driver*, runs the solution's cells once; at the answer cell of each exercise it keeps a snapshot of the
namespace, of the random generators of Python, NumPy and PyTorch, and of the files in the working folder (logs a
wrong answer wrote would otherwise meet the next branch). Every submission of that exercise then
starts from a deep copy of that snapshot and runs its own answer, the cells up to the exercise's tests, and the
exercise's probes. Its executed notebook is put together from the shared cells' outputs and its own, and graded
like any other (verdicts outside the kernel, nbgrader). Only that exercise's probes run, so only its score means
anything; that is the one the gate reads. After the last branch the driver can go on with the rest of the
solution and every probe (`whole`): the solution's own run, the reference of every verdict, then comes from the
same kernel instead of one more kernel of its own.

What a snapshot cannot hold is shared by the branches: objects that cannot be copied, and process-wide state
(TensorFlow's and Keras' seeds and counters, imported modules, files outside the working folder and its hidden
entries). Plots are shared too: no test reads them. The gate runs each exercise's first correct answer after
its wrong ones, so a branch that inherits a broken state shows up as a correct answer losing points.
"""

import copy
from datetime import datetime

import nbformat

from grader.verdicts import is_probe

MODULE = "_workshop_branches"  # the kernel-side helpers live in a module of this name, not in the namespace
KERNEL_SIDE = '''
import copy
import os
import random
import re
import shutil
import sys
import tempfile

IPYTHON = re.compile(r"In|Out|exit|quit|get_ipython|_+|_i+|_i?\\d+|_[iod]h|__\\w+__")
snapshots = {}


def _kept(name):
    return not IPYTHON.fullmatch(name)


def _generators():
    state = {"random": random.getstate()}
    if "numpy" in sys.modules:
        state["numpy"] = sys.modules["numpy"].random.get_state()
    if "torch" in sys.modules:
        state["torch"] = sys.modules["torch"].random.get_rng_state()
    return state


def _plot(value):
    """A matplotlib figure, axes or other artist, or an array of them: no test reads one, and copying a figure
    takes seconds."""
    artist = sys.modules.get("matplotlib.artist")
    if artist is None:
        return False
    if type(value).__name__ == "ndarray" and value.dtype == object:
        return value.size > 0 and all(isinstance(v, artist.Artist) for v in value.flat)
    return isinstance(value, artist.Artist)


def _copy(values):
    memo, copied = {}, {}
    for name, value in values.items():
        if _plot(value):
            copied[name] = value
            continue
        try:
            copied[name] = copy.deepcopy(value, memo)
        except Exception:  # modules, open files, some framework objects: shared, not copied
            copied[name] = value
    return copied


FILES = tempfile.mkdtemp(prefix="workshop-branches-")  # outside the working folder


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _files(here):
    """The working folder's own entries; hidden ones (~/.ipython's open history, ~/.keras, caches) stay shared."""
    return [name for name in os.listdir(here) if not name.startswith(".")]


def _save_files(name):
    for old in os.listdir(FILES):  # an earlier exercise's files: its branches are done
        shutil.rmtree(os.path.join(FILES, old))
    here, kept = os.getcwd(), os.path.join(FILES, name)
    os.mkdir(kept)
    for entry in _files(here):
        source = os.path.join(here, entry)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, os.path.join(kept, entry), symlinks=True)
        else:
            shutil.copy2(source, kept, follow_symlinks=False)


def _restore_files(name):
    here, kept = os.getcwd(), os.path.join(FILES, name)
    for entry in _files(here):
        _remove(os.path.join(here, entry))
    shutil.copytree(kept, here, symlinks=True, dirs_exist_ok=True)


def snapshot(namespace, name):
    snapshots[name] = (_copy({k: v for k, v in namespace.items() if _kept(k)}), _generators())
    _save_files(name)


def restore(namespace, name):
    _restore_files(name)
    values, state = snapshots[name]
    for key in [k for k in namespace if _kept(k)]:
        del namespace[key]
    namespace.update(_copy(values))
    random.setstate(state["random"])
    if "numpy" in state:
        sys.modules["numpy"].random.set_state(state["numpy"])
    if "torch" in state:
        sys.modules["torch"].random.set_rng_state(state["torch"])
'''


def _install():
    return nbformat.v4.new_code_cell(
        f"exec(compile({KERNEL_SIDE!r}, {MODULE!r}, 'exec'), __import__('sys').modules.setdefault({MODULE!r}, "
        f"__import__('types').ModuleType({MODULE!r})).__dict__)")


def _call(function: str, exercise: str):
    return nbformat.v4.new_code_cell(f"__import__({MODULE!r}).{function}(get_ipython().user_ns, {exercise!r})")


def answer_cell(nb, exercise: str) -> int:
    """Index of the solution cell named `exercise`."""
    return next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                == exercise and c.metadata["nbgrader"].get("solution"))


def probes_of(nb, exercise: str) -> list[int]:
    """Indices of the probe cells of the test cells of `exercise` (named EXERCISE-test...)."""
    return [i for i, c in enumerate(nb.cells) if is_probe(c) and
            c.metadata["workshop"]["probe"].startswith(f"{exercise}-test")]


def differs_only_in(nb, base, start: int, end: int) -> bool:
    """The two notebooks have the same cells outside cells start..end-1."""
    return len(nb.cells) == len(base.cells) and all(
        (a.cell_type, a.source) == (b.cell_type, b.source)
        for i, (a, b) in enumerate(zip(nb.cells, base.cells)) if not start <= i < end)


def driver(base, members: list[tuple[object, str, int]], whole: bool = False):
    """The notebook a shared kernel runs, and where each of its cells comes from.

    `base` is the sanitized solution (probes included); `members` (notebook, exercise, end) are sanitized
    submissions, each differing from `base` only before `end`, the first cell after its exercise's tests. With
    `whole`, the driver goes on with the rest of `base` after the last branch, so that it runs every cell of the
    solution once, probes included. Returns the driver and, per driver cell, None (a control cell), ("base", i) or
    (k, i): cell i of members[k]."""
    cells, origin = [_install()], [None]
    at = 0
    for exercise in sorted({e for _, e, _ in members}, key=lambda e: answer_cell(base, e)):
        start = answer_cell(base, exercise)
        for i in range(at, start):
            cells.append(copy.deepcopy(base.cells[i]))
            origin.append(("base", i))
        cells.append(_call("snapshot", exercise))
        origin.append(None)
        for k, (nb, own, end) in enumerate(members):
            if own != exercise:
                continue
            cells.append(_call("restore", exercise))
            origin.append(None)
            for i in [*range(start, end), *probes_of(nb, exercise)]:
                cells.append(copy.deepcopy(nb.cells[i]))
                origin.append((k, i))
        cells.append(_call("restore", exercise))
        origin.append(None)
        at = start
    for i in range(at, len(base.cells)) if whole else ():
        cells.append(copy.deepcopy(base.cells[i]))
        origin.append(("base", i))
    for n, cell in enumerate(cells):  # a member's cells appear once per member: ids of their own
        cell["id"] = f"driver-{n}"
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(base.metadata)), origin


def split(executed, origin: list, base, members: list[tuple[object, str, int]]) -> tuple[list[float], float]:
    """Give each member's cells the outputs they got in the executed driver: the shared cells before its answer
    cell, then its own; and `base` the outputs of the solution's cells. Returns the seconds each member's own
    cells took, and the seconds of the solution's cells."""
    starts = [answer_cell(base, exercise) for _, exercise, _ in members]
    seconds, shared = [0.0] * len(members), 0.0
    for cell, where in zip(executed.cells, origin):
        if where is None or cell.cell_type != "code":
            continue
        who, i = where
        targets = [base] + [members[k][0] for k, start in enumerate(starts) if i < start] if who == "base" else \
            [members[who][0]]
        for notebook in targets:
            target = notebook.cells[i]
            target.outputs = copy.deepcopy(cell.get("outputs", []))
            target.execution_count = cell.get("execution_count")
            if "execution" in cell.metadata:
                target.metadata["execution"] = copy.deepcopy(cell.metadata["execution"])
        if who == "base":
            shared += _duration(cell)
        else:
            seconds[who] += _duration(cell)
    return seconds, shared


def _duration(cell) -> float:
    """Seconds a cell took, from the timestamps nbclient records."""
    times = cell.metadata.get("execution", {})
    try:
        start, end = times["iopub.execute_input"], times["shell.execute_reply"]
    except KeyError:
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) -
            datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
