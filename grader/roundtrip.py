"""Grading round trip through nbgrader: python -m grader.roundtrip [ASSIGNMENT ...].

For one assignment it builds a throw-away course, releases the assignment, and autogrades three submissions:
the solution (full marks expected), the untouched student notebook (zero expected), and an "all wrong"
notebook in which every exercise holds a plausible wrong answer from grader/fixtures/ASSIGNMENT/wrong.py
(each exercise's tests must lose points).
"""

import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.release import GRADER, SOLUTIONS, assignments, nbgrader

FIXTURES = GRADER / "fixtures"
SECTION = re.compile(r"^# %% (?P<grade_id>[\w-]+): (?P<why>.+)$", re.MULTILINE)
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$\n?", re.MULTILINE)


@dataclass(frozen=True)
class WrongAnswer:
    grade_id: str  # the solution cell it replaces
    why: str
    source: str


@dataclass
class RoundTrip:
    assignment: str
    scores: dict[str, dict[str, tuple[float, float]]]  # submission -> test cell -> (score, max)
    wrong: list[WrongAnswer]
    seconds: float

    def total(self, submission: str) -> tuple[float, float]:
        cells = self.scores[submission].values()
        return sum(s for s, _ in cells), sum(m for _, m in cells)

    def exercise(self, submission: str, grade_id: str) -> tuple[float, float]:
        """Score of the test cells that belong to solution cell `grade_id` (named `grade_id`-test...)."""
        cells = [v for k, v in self.scores[submission].items() if k.startswith(f"{grade_id}-test")]
        return sum(s for s, _ in cells), sum(m for _, m in cells)

    def report(self) -> str:
        lines = [f"Grading round trip for {self.assignment} ({self.seconds:.0f} s)"]
        for submission in self.scores:
            score, most = self.total(submission)
            lines.append(f"  {submission:<9} {score:5.1f} / {most:.1f}")
        for answer in self.wrong:
            score, most = self.exercise("wrong", answer.grade_id)
            lines.append(f"    {answer.grade_id:<24} {score:4.1f} / {most:.1f}  ({answer.why})")
        return "\n".join(lines)


def wrong_answers(assignment: str) -> list[WrongAnswer]:
    """The sections of grader/fixtures/ASSIGNMENT/wrong.py, one per solution cell."""
    text = (FIXTURES / assignment / "wrong.py").read_text()
    heads = list(SECTION.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [WrongAnswer(h["grade_id"], h["why"], text[h.end():end].strip() + "\n") for h, end in zip(heads, ends)]


def solution_cells(notebook) -> dict[str, str]:
    """Solution cells of a source notebook by grade_id, with the solution markers removed."""
    return {c.metadata["nbgrader"]["grade_id"]: MARKER.sub("", c.source)
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")}


def fill(released, answers: dict[str, str]):
    """A copy of the released notebook whose solution cells hold `answers` (by grade_id)."""
    notebook = nbformat.from_dict(released)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


def round_trip(assignment: str, workdir: Path | None = None) -> RoundTrip:
    """Release, submit and autograde one assignment in a temporary course; return every test cell's score."""
    start = time.perf_counter()
    course = Path(workdir or tempfile.mkdtemp(prefix=f"roundtrip-{assignment}-"))
    name = f"{assignment}.ipynb"
    shutil.copytree(SOLUTIONS / assignment, course / "source" / assignment)
    root = f"--CourseDirectory.root={course}"
    nbgrader("generate_assignment", assignment, "--force", root, cwd=course)
    released = nbformat.read(course / "release" / assignment / name, as_version=4)
    source = nbformat.read(SOLUTIONS / assignment / name, as_version=4)
    wrong = wrong_answers(assignment)
    unknown = {w.grade_id for w in wrong} - set(solution_cells(source))
    if unknown:
        raise ValueError(f"{FIXTURES / assignment / 'wrong.py'} names unknown solution cells: {sorted(unknown)}")
    submissions = {
        "solution": fill(released, solution_cells(source)),
        "blank": released,
        "wrong": fill(released, {w.grade_id: w.source for w in wrong}),
    }
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / name)
    # nbgrader gives 0 to a test cell that writes to stderr; TensorFlow's C++ start-up log (e.g. "failed call to
    # cuInit" on a machine without a GPU) would land in whichever cell first touches TensorFlow.
    nbgrader("autograde", assignment, "--force", root, "--ExecutePreprocessor.timeout=600", cwd=course,
             WORKSHOP_PROFILE="quick", TF_CPP_MIN_LOG_LEVEL="3")
    scores = read_scores(course, assignment, list(submissions))
    shutil.rmtree(course, ignore_errors=True)
    return RoundTrip(assignment, scores, wrong, time.perf_counter() - start)


def read_scores(course: Path, assignment: str, students: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            scores[student] = {g.name: (float(g.score), float(g.max_score)) for g in notebook.grades}
    return scores


if __name__ == "__main__":
    for name in sys.argv[1:] or assignments():
        print(round_trip(name).report())
