"""Grading on Dask distributed with real processes (grader.cluster): a `dask scheduler` and two `dask worker`
processes on 127.0.0.1 grade a class of 20 submissions of 01-backprop (8 executed, 12 without a kernel of their
own) with the same outcomes and scores as local grading; one worker is killed during the run (a new one replaces
it) and nothing is lost or graded twice; a worker whose code differs from the coordinator's refuses work and says
why; a coordinator started again executes only what is missing."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from grader import cluster
from grader.grade import Result
from grader.mutants import answers, first_wrong
from grader.release import RELEASE, REPO, SOLUTIONS, fill, solution_cells
from grader.sandbox import capabilities
from grader.submissions import Submission
from tests.test_lab import free_port

ASSIGNMENT = "01-backprop"
FOUND = capabilities()
needs_sandbox = pytest.mark.skipif(bool(FOUND.broken()) and os.environ.get("WORKSHOP_REQUIRE_SANDBOX") != "1",
                                   reason=f"grading needs the sandbox: {FOUND.summary()}")


def write_class(folder: Path) -> None:
    """20 submissions: 8 to execute (blank, wrong answers, all wrong, correct alternatives, a kernel that dies) and
    12 that need no kernel of their own (7 copies of the solution, which share its run, 3 malformed, another
    assignment, a symbolic link)."""
    folder.mkdir()
    name = f"{ASSIGNMENT}.ipynb"
    released = nbformat.read(RELEASE / ASSIGNMENT / name, as_version=4)
    solution = solution_cells(nbformat.read(SOLUTIONS / ASSIGNMENT / name, as_version=4))
    wrong = [a for a in answers(ASSIGNMENT, correct=False) if a.k == 1][:4]
    right = {a.grade_id: a.source for a in answers(ASSIGNMENT, correct=True) if a.k == 2}
    notebooks = {"blank": released, "all-wrong": fill(released, {**solution, **first_wrong(ASSIGNMENT)}),
                 "right-2": fill(released, {**solution, **right}),
                 "dies": fill(released, {**solution, "forward": "import os\nos._exit(1)\n"})}
    notebooks |= {a.student: fill(released, {**solution, a.grade_id: a.source}) for a in wrong}
    assert len(notebooks) == 8
    for student, notebook in notebooks.items():
        nbformat.write(notebook, folder / f"{student}.ipynb")
    for k in range(7):
        nbformat.write(fill(released, solution), folder / f"same-{k}.ipynb")
    (folder / "garbled.ipynb").write_text("{ not json")
    (folder / "empty.ipynb").write_text("")
    (folder / "truncated.ipynb").write_text((folder / "blank.ipynb").read_text()[:2000])
    shutil.copy(RELEASE / "02-cnn" / "02-cnn.ipynb", folder / "other-assignment.ipynb")
    (folder / "linked.ipynb").symlink_to(folder / "blank.ipynb")
    assert len(list(folder.iterdir())) == 20


def start(*command: str, repository: Path = REPO) -> subprocess.Popen:
    """A dask command in a session of its own, importing grader and workshop from `repository`."""
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *command], cwd=repository,
                            env={**os.environ, "PYTHONPATH": str(repository)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def table(out: Path) -> dict[str, tuple[str, str, str]]:
    with open(out / "grades.csv", newline="") as handle:
        return {row["student"]: (row["outcome"], row["score"], row["max_score"]) for row in csv.DictReader(handle)}


def records(runs: Path) -> list[str]:
    """The submissions whose execution a run recorded (RUN.json; not RUN.probes.json or RUN.verdicts.json)."""
    return sorted(p.stem for p in runs.glob("*.json") if "." not in p.stem)


def grade(submissions: Path, out: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader.grade", ASSIGNMENT, str(submissions), "--out", str(out),
                             *options], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@needs_sandbox
@pytest.mark.reusable(*(f"{kind}/{ASSIGNMENT}" for kind in ("solutions", "notebooks", "grader/fixtures")),
                      "notebooks/02-cnn", "tests/test_lab.py")
def test_a_cluster_grades_as_one_machine_does_and_loses_nothing_when_a_worker_dies(tmp_path):
    submissions = tmp_path / "class"
    write_class(submissions)
    local = grade(submissions, tmp_path / "local", "--workers", "2")
    assert local.wait(timeout=900) == 0, local.stdout.read()[-3000:]
    expected = table(tmp_path / "local")
    assert len(expected) == 20 and expected["dies"][0] == "crashed" and expected["same-0"][1] == "12.0"

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    stale = tmp_path / "stale"  # a copy of the repository whose helper package differs: its worker must refuse
    shutil.copytree(REPO, stale, ignore=shutil.ignore_patterns(".venv", ".git", "graded", "data", "test-artifacts"))
    (stale / "workshop" / "plots.py").write_text((stale / "workshop" / "plots.py").read_text() + "\n# changed\n")
    processes = [start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0")]
    try:
        workers = [start("worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard")
                   for _ in range(2)]
        processes += workers
        processes.append(start("worker", address, "--nthreads", "1", "--no-dashboard", repository=stale))
        out = tmp_path / "cluster"
        coordinator = grade(submissions, out, "--scheduler", address)
        runs = out / "runs"
        wait_for(lambda: runs.exists() and len(list(runs.glob("*.json"))) >= 2 or coordinator.poll() is not None,
                 600, "the first results from the cluster")
        stop(workers[0])  # mid-run: its submission in progress goes to another worker
        # and a new one takes its place, as a cluster's manager would start one (the class keeps both cores busy)
        processes.append(start("worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"))
        assert coordinator.wait(timeout=900) == 0
        log = coordinator.stdout.read()
        assert "refuses to grade" in log and "workshop/plots.py" in log, log[-3000:]
        assert table(out) == expected, "the cluster's outcomes and scores differ from local grading"
        assert records(runs) == records(tmp_path / "local" / "runs"), "one record per submission, as locally"

        for student in ("blank", "all-wrong"):  # an interrupted run: these two were never recorded
            (runs / f"{student}.json").unlink()
        before = {name: (runs / f"{name}.json").stat().st_mtime_ns for name in records(runs)}
        again = grade(submissions, out, "--scheduler", address)
        assert again.wait(timeout=900) == 0, again.stdout.read()[-3000:]
        after = {name: (runs / f"{name}.json").stat().st_mtime_ns for name in records(runs)}
        assert sorted(set(after) - set(before)) == ["all-wrong", "blank"]
        assert all(after[name] == stamp for name, stamp in before.items()), "executed again what was done"
        assert table(out) == expected
    finally:
        for process in processes:
            stop(process)


class Finished:
    """A finished Dask future stand-in whose result raises `error`."""

    def __init__(self, error: Exception):
        self.error = error

    def result(self):
        raise self.error


def test_a_submission_that_kills_every_worker_ends_as_crashed_and_a_cluster_failure_is_not_kept(tmp_path):
    from distributed import KilledWorker

    submission = Submission("eve", tmp_path / "eve.ipynb", "eve.ipynb", ["a note"])
    worker = SimpleNamespace(address="tcp://10.0.0.7:4000")  # what the scheduler names as the last to die
    killed = cluster.land(Finished(KilledWorker("grade-eve", worker, 3)), None, submission, "d", "k")
    assert isinstance(killed, Result) and killed.outcome == "crashed" and not killed.transient
    assert "died" in killed.detail and killed.notes == ["a note"]
    lost = cluster.land(Finished(OSError("connection reset")), None, submission, "d", "k")
    assert lost.outcome == "crashed" and lost.transient and "cluster failed" in lost.detail


def test_a_worker_says_exactly_what_differs():
    expected = cluster.fingerprint(ASSIGNMENT)
    found = {**expected, "python": "3.12.1", "packages": {**expected["packages"], "torch": "2.0.0"}}
    reasons = cluster.differences(expected, found)
    assert len(reasons) == 2 and any("torch: 2.0.0 here" in r for r in reasons)
    assert cluster.differences(expected, cluster.fingerprint(ASSIGNMENT)) == []
