"""The release-to-collect cycle through nbgrader's exchange, with real processes and, as root, real users: the
instructor releases 01 (`make release-assignment`); two students, each a user of their own with a home of their
own, fetch it; one answers every exercise and submits, the other submits the blank notebook; the instructor
collects (`make collect`), grades the collected folder (`make grade`) and returns the feedback
(`make return-feedback`); each student fetches their own feedback page, which shows their score.

The students' processes keep one capability, reading any file (CAP_DAC_READ_SEARCH), because the interpreter may
live where other users cannot read (pyenv under /root); everything they write is checked as their own user, and
the files they hand in are theirs, as `nbgrader collect` checks."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

from grader.release import COMMON, REPO, SOLUTIONS, fill, solution_cells

ASSIGNMENT = "01-backprop"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="two students need two users: run as root (CI does)")


class Student:
    """A user of its own (useradd), whose commands run as that user in its home."""

    def __init__(self, name: str, where: Path, exchange: dict[str, str]):
        self.name, self.home = name, where / name
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(self.home), "--shell", "/bin/sh",
                        "--user-group", name], check=True)
        self.home.mkdir(mode=0o700)
        shutil.chown(self.home, name, name)
        self.env = {"HOME": str(self.home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
                    "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "JUPYTER_CONFIG_PATH": str(COMMON),
                    **exchange}

    def run(self, *command: str) -> subprocess.CompletedProcess:
        become = ["setpriv", f"--reuid={self.name}", f"--regid={self.name}", "--clear-groups",
                  "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
        return subprocess.run([*become, *command], cwd=self.home, env=self.env, capture_output=True, text=True)

    def nbgrader(self, *args: str) -> str:
        done = self.run(sys.executable, "-m", "nbgrader", *args)
        assert done.returncode == 0, f"{self.name}: nbgrader {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    def remove(self) -> None:
        subprocess.run(["userdel", self.name], check=False, capture_output=True)


def make(target: str, env: dict[str, str], **variables: str) -> str:
    done = subprocess.run(["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture
def classroom():
    """An exchange and a course id of the test's own, two students, and the instructor's environment."""
    where = Path(tempfile.mkdtemp(prefix="exchange-test-"))  # not pytest's tmp_path: its parents are root's only
    where.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    exchange = {"WORKSHOP_EXCHANGE": str(where / "exchange"), "WORKSHOP_COURSE_ID": f"course-{tag}"}
    students = []
    try:
        students = [Student(f"ws-{first}-{tag}", where, exchange) for first in ("ada", "bo")]
        probe = students[0].run("id", "-un")
        assert probe.stdout.strip() == students[0].name, f"setpriv did not switch users: {probe.stderr[-1500:]}"
        yield where, {**os.environ, **exchange}, students
    finally:
        for student in students:
            student.remove()
        shutil.rmtree(where, ignore_errors=True)


def test_release_fetch_submit_collect_grade_and_return_feedback(classroom):
    where, instructor, (ada, bo) = classroom
    make("release-assignment", instructor, ASSIGNMENT=ASSIGNMENT)

    for student in (ada, bo):
        student.nbgrader("fetch_assignment", ASSIGNMENT)
    fetched = ada.home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    released = nbformat.read(REPO / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert nbformat.read(fetched, as_version=4) == released, "students fetch the released notebook as it is"
    source = nbformat.read(SOLUTIONS / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nbformat.write(fill(released, solution_cells(source)), fetched)  # Ada answers every exercise
    for student in (ada, bo):  # Bo hands in the notebook as fetched
        student.nbgrader("submit", ASSIGNMENT)

    collected = where / "collected"
    make("collect", instructor, ASSIGNMENT=ASSIGNMENT, COLLECTED=str(collected))
    submitted = collected / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted([ada.name, bo.name])

    out = where / "graded"
    make("grade", instructor, ASSIGNMENT=ASSIGNMENT, SUBMISSIONS=str(submitted), OUT=str(out))
    with open(out / "grades.csv", newline="") as table:
        grades = {row["student"]: row for row in csv.DictReader(table)}
    assert set(grades) == {ada.name, bo.name}
    most = float(grades[ada.name]["max_score"])
    assert most == 12 and float(grades[ada.name]["score"]) == most and float(grades[bo.name]["score"]) == 0

    make("return-feedback", instructor, ASSIGNMENT=ASSIGNMENT, OUT=str(out))
    for student, score in ((ada, most), (bo, 0.0)):
        student.nbgrader("fetch_feedback", ASSIGNMENT)
        pages = list((student.home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(pages) == 1, f"{student.name} should find one feedback page, found {pages}"
        page = pages[0].read_text()
        assert f"{ASSIGNMENT} (Score: {score:.1f} / {most:.1f})" in page, \
            f"{student.name}'s feedback should show {score} of {most}"
        assert "BEGIN HIDDEN TESTS" not in page and "def check(" not in page, "feedback never shows hidden checks"
