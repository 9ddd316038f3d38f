"""The mutation gate (grader.mutants), graded as a class is: for every exercise of every assignment, each
plausible wrong answer of grader/fixtures loses points on its own exercise, each correct alternative scores full,
the solution scores full and the blank notebook zero."""

import nbformat
import pytest

from grader.mutants import RIGHT, WRONG, answers, gate
from grader.release import SOLUTIONS, assignments, solution_cells


@pytest.fixture(scope="module", params=assignments())
def result(request):
    return gate(request.param)


def test_every_answer_is_told_apart(result, capsys):
    with capsys.disabled():
        print("\n" + result.table())
    assert result.total("solution")[0] == result.total("solution")[1] > 0, "the solution must score full marks"
    assert result.total("blank")[0] == 0, "the untouched student notebook must score zero"
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
