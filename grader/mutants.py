"""The mutation gate: python -m grader.mutants [ASSIGNMENT ...] [--only EXERCISE] [--every].

For every exercise (solution cell) of an assignment, grader/fixtures/ASSIGNMENT/ holds plausible wrong answers
(wrong.py, at least three) and correct answers written differently from the solution (right.py, at least two),
as sections headed `# %% EXERCISE: why`. Everything is graded with grader.grade, the path of a real class
(sandboxed where the machine allows, hidden checks decided outside the kernel, nbgrader's gradebook), in one run
per assignment:
- the solution, whole: full marks expected, and no error in any cell (the check nbval makes, on this same run),
  run by the shared kernel of the branches below after its last branch;
- `right-K` (K >= 2): the K-th correct alternative of every exercise in one notebook (the solution where an
  exercise has fewer), in a kernel of its own, up to the notebook's last tests (the demonstrations after them
  score nothing), then every probe: full marks expected;
- per exercise, each a copy of the solution with one answer cell replaced, run only up to that exercise's tests
  and judged on that exercise alone, as branches of a shared kernel (grader.branches), in this order:
  `wrong-EXERCISE-K` (must lose points), `right-EXERCISE-1`, the first correct alternative (full marks: this also
  proves that stopping after the tests costs nothing, and that the wrong answers before it in the same kernel left
  no broken state behind), and `blank-EXERCISE`, the cell as students get it (zero). The solution's own answer
  then runs after them all, in the shared kernel's run of the solution.
Only scores are wanted, so no feedback pages are written (tests/test_class.py covers them). `make test` grades
the first WRONG wrong and RIGHT correct answers of each exercise; --every grades them all (about a third more).
"""

import argparse
import os
import pickle
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
WRONG, RIGHT = 3, 2  # the fewest answers of each kind per exercise
BLANK = "the cell as the student gets it (it must score zero)"
KERNELS = 1  # shared kernels per gate: each runs the solution's cells again; tests/test_mutants.py runs 2 gates at once


@dataclass(frozen=True)
class Answer:
    grade_id: str  # the solution cell it replaces
    why: str
    source: str
    correct: bool
    student: str  # the submission that holds it
    alone: bool  # the only answer in its submission, which stops after its exercise's tests
    k: int  # its place among the answers of its kind to its exercise, from 1


def answers(assignment: str, correct: bool) -> list[Answer]:
    """The sections of grader/fixtures/ASSIGNMENT/right.py (correct) or wrong.py, in file order."""
    path = FIXTURES / assignment / ("right.py" if correct else "wrong.py")
    text = path.read_text() if path.exists() else ""
    heads = list(SECTION.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    found, seen = [], {}
    for head, end in zip(heads, ends):
        k = seen[head["grade_id"]] = seen.get(head["grade_id"], 0) + 1
        alone = not correct or k == 1
        student = f"{'right' if correct else 'wrong'}-{head['grade_id']}-{k}" if alone else f"right-{k}"
        found.append(Answer(head["grade_id"], head["why"], text[head.end():end].strip() + "\n", correct, student,
                            alone, k))
    return found


def first_wrong(assignment: str) -> dict[str, str]:
    """One plausible wrong answer per exercise (the first of each in wrong.py): an "all wrong" notebook."""
    found: dict[str, str] = {}
    for answer in answers(assignment, correct=False):
        found.setdefault(answer.grade_id, answer.source)
    return found


@dataclass
class Gate:
    assignment: str
    scores: dict[str, dict[str, tuple[float, float]]]  # submission -> exercise -> (score, max)
    answers: list[Answer]
    seconds: float
    errors: list[str]  # error outputs of the solution's own run, in any cell (nbval's check, on the same run)

    def total(self, submission: str) -> tuple[float, float]:
        cells = self.scores[submission].values()
        return sum(s for s, _ in cells), sum(m for _, m in cells)

    def exercise(self, submission: str, grade_id: str) -> tuple[float, float]:
        return self.scores[submission].get(grade_id, (0.0, 0.0))

    def caught(self, answer: Answer) -> bool:
        """A wrong answer lost points on its exercise, the blank one all of them; a correct one kept them all."""
        score, most = self.exercise(answer.student, answer.grade_id)
        if answer.correct:
            return score == most > 0
        return score == 0 < most if answer.why == BLANK else score < most

    def table(self) -> str:
        lines = [f"Mutation gate for {self.assignment} ({self.seconds:.0f} s)"]
        score, most = self.total("solution")
        lines.append(f"  {'solution':<34} {score:5.1f} / {most:.1f}")
        lines.append(f"  {'exercise':<24} {'answer':<9} {'score':>11}  verdict  why")
        for answer in self.answers:
            score, most = self.exercise(answer.student, answer.grade_id)
            verdict = ("full" if answer.correct else "caught") if self.caught(answer) else "MISSED"
            kind = answer.student.split("-")[0] if answer.alone else answer.student
            lines.append(f"  {answer.grade_id:<24} {kind:<9} {score:4.1f} / {most:4.1f}  {verdict:<7}  {answer.why}")
        return "\n".join(lines)


def gate(assignment: str, only: str = "", every: bool = False, workdir: Path | None = None) -> Gate:
    """Grade the solution, the correct alternatives, the wrong and the blank answers of `assignment` (the first
    WRONG and RIGHT of each exercise, or with `every` all; with `only`, of that exercise alone) in one grading
    run."""
    from grader.grade import after_tests, grade
    from grader.sandbox import Confinement, capabilities

    start = time.perf_counter()
    work = Path(workdir or tempfile.mkdtemp(prefix=f"mutants-{assignment}-"))
    name = f"{assignment}.ipynb"
    released = nbformat.read(RELEASE / assignment / name, as_version=4)
    solution = solution_cells(nbformat.read(SOLUTIONS / assignment / name, as_version=4))
    # wrong answers first: in the shared kernel, each exercise's first correct answer runs after them
    found = [a for a in answers(assignment, False) + answers(assignment, True) if not only or a.grade_id == only]
    if not every:
        found = [a for a in found if a.k <= (RIGHT if a.correct else WRONG)]
    unknown = {a.grade_id for a in found} - set(solution)
    if unknown:
        raise ValueError(f"{FIXTURES / assignment} names unknown exercises: {sorted(unknown)}")
    given = solution_cells(released)
    for exercise in dict.fromkeys(a.grade_id for a in found):
        found.append(Answer(exercise, BLANK, given[exercise], False, f"blank-{exercise}", True, 0))
    submissions = {"solution": solution}
    for answer in found:
        base = submissions.setdefault(answer.student, dict(solution))
        base[answer.grade_id] = answer.source
    (work / "class").mkdir(parents=True, exist_ok=True)
    for student, cells in submissions.items():
        nbformat.write(fill(released, cells), work / "class" / f"{student}.ipynb")
    confinement = capabilities()
    if confinement.broken():
        confinement = Confinement.none("mutation gate without a sandbox")
    # the correct alternatives together stop after the notebook's last tests too: what runs after them scores nothing
    last = max(solution, key=lambda exercise: after_tests(released, exercise).start)
    stop_after = {a.student: a.grade_id if a.alone else last for a in found}
    results = grade(assignment, work / "class", work / "out", workers=os.cpu_count() or 1, progress=False,
                    confinement=confinement, stop_after=stop_after, feedback=False, share=KERNELS)
    stopped = [f"{r.student}: {r.outcome} {r.detail}" for r in results if r.outcome != "graded"]
    if stopped:
        raise RuntimeError(f"{assignment}: not every submission ran through: {stopped}")
    scores = {r.student: {e: (r.exercises[e], r.exercise_max[e]) for e in r.exercise_max} for r in results}
    executed = nbformat.read(work / "out" / "reference" / "solution.ipynb", as_version=4)
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, cell in enumerate(executed.cells)
              for o in cell.get("outputs", []) if o.output_type == "error"]
    shutil.rmtree(work, ignore_errors=True)
    return Gate(assignment, scores, found, time.perf_counter() - start, errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.mutants", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    parser.add_argument("--only", default="", help="one exercise's answers only (for writing fixtures)")
    parser.add_argument("--every", action="store_true", help=f"every answer, not only the first {WRONG} wrong "
                        f"and {RIGHT} correct of each exercise")
    parser.add_argument("--save", type=Path, help="also keep each result in this folder, as ASSIGNMENT.pickle")
    args = parser.parse_args(argv)
    missed = 0
    for assignment in args.assignments or assignments():
        result = gate(assignment, args.only, args.every)
        print(result.table(), flush=True)
        if args.save:
            (args.save / f"{assignment}.pickle").write_bytes(pickle.dumps(result))
        missed += sum(not result.caught(a) for a in result.answers) + len(result.errors)
    return 1 if missed else 0


if __name__ == "__main__":
    from grader.mutants import main as entry  # so that --save pickles grader.mutants.Gate, not __main__.Gate
    sys.exit(entry())
