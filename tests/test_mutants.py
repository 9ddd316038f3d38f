"""The mutation gate (grader.mutants), graded as a class is: for every exercise of every assignment, each
plausible wrong answer of grader/fixtures loses points on its own exercise, each correct alternative scores full,
the blank answer zero, and the solution full marks without an error in any cell."""

import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from grader import reuse
from grader.mutants import RIGHT, WRONG, answers
from grader.release import REPO, SOLUTIONS, assignments, solution_cells

AT_ONCE = 2  # gates in parallel: each leaves a core idle while its verdicts and nbgrader's autograde run


@pytest.fixture(scope="session")
def gates(request, tmp_path_factory):
    """The gate of every assignment still to run (grader.reuse), AT_ONCE at a time, each in a process of its own
    (python -m grader.mutants)."""
    folder = tmp_path_factory.mktemp("gates")

    def run(assignment):
        done = subprocess.run([sys.executable, "-m", "grader.mutants", assignment, "--save", str(folder)], cwd=REPO,
                              capture_output=True, text=True)
        saved = folder / f"{assignment}.pickle"
        if not saved.exists():
            raise RuntimeError(f"the gate of {assignment} did not finish:\n{done.stderr[-3000:]}")
        return pickle.loads(saved.read_bytes())

    wanted = reuse.selected(request, "assignment")
    with ThreadPoolExecutor(AT_ONCE) as pool:
        futures = {assignment: pool.submit(run, assignment) for assignment in assignments() if assignment in wanted}
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.reusable("solutions/{assignment}", "notebooks/{assignment}", "grader/fixtures/{assignment}")
@pytest.mark.parametrize("assignment", assignments())
def test_every_answer_is_told_apart(gates, assignment, capsys):
    result = gates[assignment].result()
    with capsys.disabled():
        print("\n" + result.table())
    assert not result.errors, f"the solution's own run raised errors (nbval's check): {result.errors}"
    assert result.total("solution")[0] == result.total("solution")[1] > 0, "the solution must score full marks"
    missed = [f"{a.student} ({a.why})" for a in result.answers if not result.caught(a)]
    assert not missed, f"wrong answers that keep full marks, or correct ones that lose points: {missed}"


@pytest.mark.parametrize("assignment", assignments())
def test_every_exercise_has_enough_answers(assignment):
    source = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    for grade_id in solution_cells(source):
        for correct, fewest in ((False, WRONG), (True, RIGHT)):
            count = sum(a.grade_id == grade_id for a in answers(assignment, correct))
            assert count >= fewest, f"{grade_id}: {count} {'correct' if correct else 'wrong'} answers, " \
                                    f"at least {fewest} wanted"


def test_a_stopped_run_skips_exactly_the_cells_after_the_exercise_tests():
    from grader.grade import after_tests
    from grader.release import RELEASE
    from grader.verdicts import hidden, probe_cells

    nb = nbformat.read(RELEASE / "01-backprop" / "01-backprop.ipynb", as_version=4)
    source = nbformat.read(SOLUTIONS / "01-backprop" / "01-backprop.ipynb", as_version=4)
    cells = len(nb.cells)
    nb.cells += probe_cells(hidden(source))
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    skipped = after_tests(nb, "adam")
    assert ids[skipped.start - 1] == "adam-test" and skipped.stop == cells
    assert "train" in [ids[i] for i in skipped] and "train-test" in [ids[i] for i in skipped]
    with pytest.raises(ValueError):
        after_tests(nb, "no-such-exercise")


def test_branches_share_the_cells_before_their_answer_and_keep_their_own():
    from grader import branches
    from grader.grade import after_tests, chains
    from grader.release import RELEASE, fill
    from grader.verdicts import hidden, probe_cells

    source = nbformat.read(SOLUTIONS / "01-backprop" / "01-backprop.ipynb", as_version=4)
    released = nbformat.read(RELEASE / "01-backprop" / "01-backprop.ipynb", as_version=4)

    def prepared(answers):
        nb = fill(released, answers)
        nb.cells += probe_cells(hidden(source))
        return nb

    solution = solution_cells(source)
    base = prepared(solution)
    members = [(prepared(solution | {exercise: f"# answer {k}\n"}), exercise,
                after_tests(base, exercise).start) for k, exercise in enumerate(["forward", "adam", "forward"])]
    driver, origin = branches.driver(base, members)
    starts = {e: branches.answer_cell(base, e) for e in ("forward", "adam")}
    # the solution's cells once, in order, up to the last exercise's answer; each member's own cells after them
    assert [i for i in (w[1] for w in origin if w and w[0] == "base")] == list(range(starts["adam"]))
    for k, (nb, exercise, end) in enumerate(members):
        own = [i for w in origin if w and w[0] == k for i in [w[1]]]
        assert own == [*range(starts[exercise], end), *branches.probes_of(nb, exercise)]
        assert driver.cells[origin.index((k, starts[exercise]))].source == f"# answer {k}\n"
    for cell in driver.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=cell.id)]
            cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z",
                                          "shell.execute_reply": "2026-01-01T00:00:01Z"}
    seconds, shared = branches.split(driver, origin, base, members)
    for k, (nb, exercise, end) in enumerate(members):
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        ran = [i for i in code if nb.cells[i].get("outputs")]
        assert ran == [i for i in code if i < end or i in branches.probes_of(nb, exercise)]
        assert seconds[k] == sum(1 for i in ran if i >= starts[exercise])
    assert shared == sum(1 for i in range(starts["adam"]) if base.cells[i].cell_type == "code")
    # whole: the driver goes on to the solution's last cell and probe, each once, and the solution gets them all
    driver, origin = branches.driver(base, members, whole=True)
    assert [w[1] for w in origin if w and w[0] == "base"] == list(range(len(base.cells)))
    for cell in driver.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=cell.id)]
    branches.split(driver, origin, base, members)
    assert all(c.outputs for c in base.cells if c.cell_type == "code")
    assert members[0][0].cells[starts["forward"]].outputs != members[2][0].cells[starts["forward"]].outputs
    tasks = [("a", "k", "forward"), ("b", "k", "adam"), ("c", "k", "forward"), ("d", "k", "train")]
    assert chains(tasks, 2) == [[tasks[0], tasks[2], tasks[3]], [tasks[1]]]
    assert chains(tasks[:1], 2) == [tasks[:1]]


def test_a_snapshot_copies_values_and_files_and_shares_plots(tmp_path, monkeypatch):
    import types

    import matplotlib.figure
    import numpy as np

    from grader import branches

    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run-0").write_text("kept")
    (tmp_path / ".ipython").mkdir()
    side = types.ModuleType("side")
    exec(compile(branches.KERNEL_SIDE, "side", "exec"), side.__dict__)
    figure = matplotlib.figure.Figure()
    axes = np.array(figure.subplots(1, 2), dtype=object)
    namespace = {"data": np.zeros(3), "log": [1], "figure": figure, "axes": axes, "_": 1}
    side.snapshot(namespace, "ex")
    namespace["data"][0], namespace["log"][0] = 5, 2  # a branch changes values in place, and files
    (tmp_path / "logs" / "run-0").write_text("changed")
    (tmp_path / "logs" / "run-1").write_text("new")
    (tmp_path / "stray").write_text("new")
    (tmp_path / ".ipython" / "history").write_text("shared")
    side.restore(namespace, "ex")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        [".ipython", ".ipython/history", "logs", "logs/run-0"], "the working folder as it was, hidden entries aside"
    assert (tmp_path / "logs" / "run-0").read_text() == "kept"
    assert namespace["data"][0] == 0 and namespace["log"] == [1], "each branch starts from the snapshot's values"
    assert namespace["figure"] is figure and namespace["axes"] is axes, "plots are shared, not copied"


def test_only_a_submission_one_answer_apart_from_the_solution_branches(tmp_path):
    from grader.grade import _one_answer_apart
    from grader.release import RELEASE, fill

    released = nbformat.read(RELEASE / "01-backprop" / "01-backprop.ipynb", as_version=4)
    solution = solution_cells(nbformat.read(SOLUTIONS / "01-backprop" / "01-backprop.ipynb", as_version=4))
    one = tmp_path / "one.ipynb"
    nbformat.write(fill(released, {**solution, "adam": "pass\n"}), one)
    two = tmp_path / "two.ipynb"
    nbformat.write(fill(released, {**solution, "adam": "pass\n", "forward": "pass\n"}), two)
    (tmp_path / "garbled.ipynb").write_text("{ not json")
    assert _one_answer_apart(one, "adam", solution) and not _one_answer_apart(one, "train", solution)
    assert not _one_answer_apart(two, "adam", solution)
    assert not _one_answer_apart(tmp_path / "garbled.ipynb", "adam", solution)
