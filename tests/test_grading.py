"""Every assignment's tests discriminate, graded as a class is (grader.grade: hidden checks outside the kernel):
the solution scores full marks, the blank notebook zero, and each plausible wrong answer
(grader/fixtures/ASSIGNMENT/wrong.py) loses points in its exercise."""

import nbformat
import pytest

from grader.release import SOLUTIONS, assignments, solution_cells
from grader.roundtrip import round_trip, wrong_answers


@pytest.fixture(scope="module", params=assignments())
def result(request):
    return round_trip(request.param)


def test_round_trip(result, capsys):
    with capsys.disabled():
        print("\n" + result.report())
    exercises = [w.grade_id for w in result.wrong]
    assert len(exercises) >= 3, "at least three plausible wrong answers per notebook"
    assert result.total("solution")[0] == result.total("solution")[1] > 0, "the solution must score full marks"
    assert result.total("blank")[0] == 0, "the untouched student notebook must score zero"
    for grade_id in exercises:
        solution_score, most = result.exercise("solution", grade_id)
        assert most > 0, f"{grade_id} has no graded test cell named {grade_id}-test…"
        assert solution_score == most, f"the solution loses points in {grade_id}"
        assert result.exercise("blank", grade_id)[0] == 0, f"the blank notebook scores in {grade_id}"
        assert result.exercise("wrong", grade_id)[0] < most, f"the wrong answer to {grade_id} keeps full marks"


@pytest.mark.parametrize("assignment", assignments())
def test_every_exercise_has_a_wrong_answer(assignment):
    source = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    assert set(solution_cells(source)) == {w.grade_id for w in wrong_answers(assignment)}
