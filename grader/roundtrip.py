"""Grading round trip through the grading tool: python -m grader.roundtrip [ASSIGNMENT ...].

For one assignment it grades three submissions with grader.grade, the same path as a class (sandboxed where the
machine allows, hidden checks decided outside the kernel): the solution (full marks expected), the untouched
student notebook (zero expected), and an "all wrong" notebook in which every exercise holds a plausible wrong
answer from grader/fixtures/ASSIGNMENT/wrong.py (each exercise's tests must lose points).
"""

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.release import GRADER, RELEASE, SOLUTIONS, assignments, fill, solution_cells

FIXTURES = GRADER / "fixtures"
SECTION = re.compile(r"^# %% (?P<grade_id>[\w-]+): (?P<why>.+)$", re.MULTILINE)


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


def round_trip(assignment: str, workdir: Path | None = None) -> RoundTrip:
    """Grade the solution, the blank notebook and the wrong answers of one assignment; every test cell's score."""
    from grader.grade import grade
    from grader.sandbox import Confinement, capabilities

    start = time.perf_counter()
    work = Path(workdir or tempfile.mkdtemp(prefix=f"roundtrip-{assignment}-"))
    name = f"{assignment}.ipynb"
    released = nbformat.read(RELEASE / assignment / name, as_version=4)
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
    (work / "class").mkdir(parents=True, exist_ok=True)
    for student, notebook in submissions.items():
        nbformat.write(notebook, work / "class" / f"{student}.ipynb")
    found = capabilities()
    confinement = Confinement.none("round trip without a sandbox") if found.broken() else found
    results = grade(assignment, work / "class", work / "out", workers=os.cpu_count() or 1, progress=False,
                    confinement=confinement)
    stopped = [f"{r.student}: {r.outcome} {r.detail}" for r in results if r.outcome != "graded"]
    if stopped:
        raise RuntimeError(f"{assignment}: not every submission ran through: {stopped}")
    scores = read_scores(work / "out" / "course", assignment, list(submissions))
    shutil.rmtree(work, ignore_errors=True)
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
