"""Grading speed: python -m grader.benchmark [ASSIGNMENT] [STUDENTS] (or `make bench-grade`).

Builds a class of STUDENTS submissions (default 40; alternately the solution and the plausible wrong answers of
grader/fixtures, each made distinct by a comment, so that none shares the solution's run), then grades it three
times: with plain nbgrader (autograde and generate_feedback, serial, no sandbox), with grader.grade (sandboxed, one
worker per core) and with grader.grade on a local Dask cluster of one worker process per core (grader.cluster).
Prints the times, the speed-up and the cluster's overhead per submission.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from grader.grade import grade
from grader.mutants import first_wrong
from grader.release import RELEASE, SOLUTIONS, fill, nbgrader, solution_cells


def build(assignment: str, students: int, folder: Path) -> None:
    released = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    right = solution_cells(nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4))
    wrong = first_wrong(assignment)
    for k in range(students):
        answers = right if k % 2 == 0 else wrong
        first = next(iter(answers))
        answers = {**answers, first: f"{answers[first]}\n# student {k}\n"}  # bytes of its own, same verdicts
        nbformat.write(fill(released, answers), folder / f"student{k:03d}.ipynb")


def plain(assignment: str, folder: Path, course: Path) -> float:
    """Seconds for nbgrader alone: autograde then generate_feedback, in a course of its own."""
    shutil.copytree(SOLUTIONS / assignment, course / "source" / assignment)
    root = f"--CourseDirectory.root={course}"
    nbgrader("generate_assignment", assignment, "--force", root, cwd=course)
    for notebook in folder.glob("*.ipynb"):
        target = course / "submitted" / notebook.stem / assignment
        target.mkdir(parents=True)
        shutil.copyfile(notebook, target / f"{assignment}.ipynb")
    start = time.perf_counter()
    env = {"WORKSHOP_PROFILE": "quick", "TF_CPP_MIN_LOG_LEVEL": "3"}
    nbgrader("autograde", assignment, "--force", root, "--ExecutePreprocessor.timeout=600", cwd=course, **env)
    nbgrader("generate_feedback", assignment, "--force", root, cwd=course)
    return time.perf_counter() - start


def main(assignment: str = "01-backprop", students: int = 40) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    folder = work / "class"
    folder.mkdir()
    build(assignment, students, folder)
    serial = plain(assignment, folder, work / "plain")
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    results = grade(assignment, folder, work / "tool", workers=cores)
    tool = time.perf_counter() - start
    start = time.perf_counter()
    on_cluster = grade(assignment, folder, work / "cluster", scheduler=f"local:{cores}")
    cluster = time.perf_counter() - start
    graded = sum(r.outcome == "graded" for r in results)
    same = all((a.outcome, a.score) == (b.outcome, b.score) for a, b in zip(results, on_cluster, strict=True))
    print(f"{students} submissions of {assignment} on {cores} cores ({graded} graded by the tool):")
    print(f"  plain nbgrader (serial, no sandbox):         {serial:7.1f} s")
    print(f"  grader.grade (sandboxed, parallel):          {tool:7.1f} s")
    print(f"  grader.grade on a local Dask cluster:        {cluster:7.1f} s "
          f"({'same' if same else 'DIFFERENT'} outcomes and scores)")
    print(f"  speed-up: {serial / tool:.2f}x; the cluster's overhead: {(cluster - tool) / students:+.2f} s per "
          "submission")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:2], *map(int, sys.argv[2:3]))
