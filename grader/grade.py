"""Grade a class: python -m grader.grade ASSIGNMENT SUBMISSIONS [options] (or `make grade`); --help lists them.

SUBMISSIONS is a folder (NAME.ipynb per student, NAME/ASSIGNMENT.ipynb, or what `nbgrader collect` leaves) or an
LMS zip download (entries named STUDENT_..._ASSIGNMENT.ipynb); grader.submissions reads either, safely. With
--scheduler or --cluster the executions run on a Dask cluster's workers (grader.cluster).
nbgrader does the grading; this tool adds:
1. every submission checked (readable notebook, right assignment, test cells intact) and executed in parallel,
   each kernel in a bubblewrap sandbox with limits (grader.sandbox, grader.execute), in the quick profile unless
   told otherwise, with the test cells' visible part only, then the probes of the hidden checks (grader.verdicts);
2. the solution executed the same way once, for the reference data of every probe (a submission identical to
   it, byte for byte, gets that run rather than one of its own);
3. the hidden checks run on each submission's probe data in a process of their own (`python -m grader.verdicts`),
   where no student code ran; each graded test cell gets its verdict, whatever the kernel printed;
4. one `nbgrader autograde` over the executed notebooks, so a single process writes the gradebook;
5. feedback without hidden tests and without live markup, a CSV safe to open in a spreadsheet, and a summary with
   every submission's outcome.
Submissions are never modified. Executions are kept under OUT/runs, keyed on everything that can change them (the
submission, the source and released notebooks, the limits, the profile and the kernel's environment, the helper
package and the sandbox's code), so a second run, or one after an interruption, executes only what changed.
A grading failure of the tool's own (the kernel did not start) is tried again, and never kept as final.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
)
from tqdm import tqdm
from traitlets import Unicode

from grader import branches
from grader.execute import SandboxedExecute
from grader.release import COMMON, GRADER, RELEASE, REPO, SOLUTIONS, fill, nbgrader, solution_cells
from grader.reports import OUTCOMES, summarise
from grader.sandbox import WORK, Confinement, Limits, capabilities, kernel_uid
from grader.submissions import Submission, collect_zip, find_submissions
from grader.verdicts import collect, hidden, is_probe, probe_cells, without_hidden
from workshop.data import sha256sum

NOT_RUN = ("malformed notebook", "wrong assignment", "refused")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS")
FORWARDED = ("KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "WORKSHOP_DATA_DIR")  # of the grader's variables, only these
CODE = [*sorted((REPO / "workshop").glob("*.py")), GRADER / "execute.py", GRADER / "sandbox.py",
        GRADER / "verdicts.py", REPO / "requirements.txt"]
REFERENCE = "solution"  # the name of the solution's run, in OUT/reference
COURSES = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workshop-grader" / "courses"
UNSANDBOXED = "NO SANDBOX (--no-sandbox): student code ran with the grader's rights"


@dataclass
class Result:
    """What happened to one submission."""

    student: str
    sha256: str
    origin: str = ""  # the file or archive entry it came from
    outcome: str = "graded"
    cell: int | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)  # restored test cells, id collisions
    seconds: float = 0.0
    score: float = 0.0
    max_score: float = 0.0
    exercises: dict[str, float] = field(default_factory=dict)  # score per exercise
    exercise_max: dict[str, float] = field(default_factory=dict)  # the most each exercise can score
    key: str = ""  # what its execution depended on (see Plan.key)
    transient: bool = False  # the tool failed, not the submission: never kept, tried again next run


@dataclass(frozen=True)
class Plan:
    """How every submission of one run is executed (sent to each worker)."""

    assignment: str
    course: Path
    runs: Path
    limits: Limits
    environment: dict[str, str]  # the kernel's variables
    sandboxed: bool = True
    cgroup: bool = True

    @cached_property
    def _depends_on(self) -> dict:
        return {"limits": asdict(self.limits), "environment": self.environment, "sandboxed": self.sandboxed,
                "cgroup": self.cgroup, "code": [sha256sum(path) for path in CODE],
                "notebooks": [sha256sum(folder / self.assignment / f"{self.assignment}.ipynb")
                              for folder in (SOLUTIONS, RELEASE)]}

    def key(self, submission_sha256: str, stop_after: str = "", shared: bool = False) -> str:
        """A digest of everything an execution depends on."""
        parts = {"submission": submission_sha256, "stop_after": stop_after, "shared": shared, **self._depends_on}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def kernel_environment(profile: str, limits: Limits) -> dict[str, str]:
    """The variables a kernel gets: the profile, a quiet TensorFlow (its C++ log would fill the feedback, though it
    costs no points), each kernel's share of the cores (parallel kernels that each spread over every core slow
    each other down), and the FORWARDED variables the grader has set."""
    environment = {"WORKSHOP_PROFILE": profile, "TF_CPP_MIN_LOG_LEVEL": "3",
                   **dict.fromkeys(THREAD_VARIABLES, str(limits.threads))}
    return environment | {k: os.environ[k] for k in FORWARDED if k in os.environ}


def test_cells(nb) -> dict[str, str]:
    """grade_id -> source of the locked, graded (test) cells of a notebook."""
    cells = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("locked") and not meta.get("solution"):
            cells[meta["grade_id"]] = cell.source
    return cells


def inspect(nb, release) -> tuple[str, list[str]]:
    """Outcome so far ("graded" or "wrong assignment") and notes on missing, modified or re-pointed locked cells.

    A re-pointed locked cell (its nbgrader metadata changed, say to ungraded) gets its metadata back here, so that
    nbgrader restores its source as for any modified locked cell."""
    def exercises(notebook) -> set[str]:
        return {m["grade_id"] for c in notebook.cells if (m := c.get("metadata", {}).get("nbgrader", {})).get(
            "grade_id") and (m.get("grade") or m.get("solution"))}

    if not exercises(nb) & exercises(release):
        return "wrong assignment", []
    released = {c.get("id"): c.metadata["nbgrader"] for c in release.cells
                if c.metadata.get("nbgrader", {}).get("locked")}
    notes = []
    for cell in nb.cells:
        original = released.get(cell.get("id"))
        if original and cell.get("metadata", {}).get("nbgrader") != original:
            cell.setdefault("metadata", {})["nbgrader"] = original
            notes.append(f"locked cell {original['grade_id']} re-pointed (restored)")
    given, got = test_cells(release), test_cells(nb)
    notes += [f"test cell {g} missing (restored)" for g in given if g not in got]
    notes += [f"test cell {g} modified (restored)" for g in given if g in got and got[g] != given[g]]
    return "graded", notes


def after_tests(nb, exercise: str) -> range:
    """Indices of the cells after the last test cell of `exercise` (named EXERCISE-test...), probes excluded."""
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "") for c in nb.cells]
    last = max((i for i, g in enumerate(ids) if g.startswith(f"{exercise}-test")), default=None)
    if last is None:
        raise ValueError(f"no test cell of {exercise}")
    end = next((i for i, c in enumerate(nb.cells) if is_probe(c)), len(nb.cells))
    return range(last + 1, end)


def execute_one(plan: Plan, submission: Submission, key: str, stop_after: str = "") -> Result:
    """Check, sanitize (nbgrader) and execute one submission in the sandbox; save the executed notebook.
    With `stop_after` (an exercise), no cell after that exercise's tests runs, except the probes.
    A failure of the tool's own is tried once more, then reported as transient (not kept)."""
    for attempt in (1, 2):
        try:
            result = _execute(plan, submission, stop_after)
        except Exception as error:  # noqa: BLE001 - one broken submission must not stop the class
            result = Result(submission.student, sha256sum(submission.path), outcome="crashed", transient=True,
                            detail=f"grading failed: {type(error).__name__}: {error}")
        if not result.transient:
            break
        result.detail += f" (attempt {attempt} of 2; not kept, a new run tries again)"
    result.origin, result.key, result.notes = submission.origin, key, [*submission.notes, *result.notes]
    return result


def _prepare(plan: Plan, submission: Submission, sockets: str) -> tuple[Result, object, object, dict]:
    """Read, check and sanitize (nbgrader) one submission, and append the probes: (result so far, the notebook as
    submitted, the notebook to execute, resources); both notebooks are None when it cannot be executed."""
    assignment, student = plan.assignment, submission.student
    result = Result(student, sha256sum(submission.path))
    try:
        nb = nbformat.read(submission.path, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a malformed notebook
        result.outcome, result.detail = "malformed notebook", f"{type(error).__name__}: {str(error)[:200]}"
        return result, None, None, {}
    release = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    result.outcome, result.notes = inspect(nb, release)
    if result.outcome != "graded":
        result.detail = f"none of its graded cells belongs to {assignment}"
        return result, None, None, {}
    checked = nbformat.from_dict(nb)  # as submitted, with re-pointed test cells' metadata restored
    resources = {"nbgrader": {"db_url": f"sqlite:///{plan.course / 'gradebook.db'}", "assignment": assignment,
                              "notebook": assignment, "student": student}, "metadata": {"path": sockets}}
    try:
        for step in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells(add_missing_cells=True),
                     CheckCellMetadata()):
            nb, resources = step.preprocess(nb, resources)
    except Exception as error:  # noqa: BLE001 - nbgrader rejects tampered metadata with assorted errors
        result.outcome, result.detail = "malformed notebook", f"nbgrader: {str(error)[:200]}"
        return result, None, None, {}
    for cell in nb.cells:  # test cells come back from the gradebook whole: hidden tests never run in the kernel
        cell.source = without_hidden(cell.source)
    source = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    nb.cells += probe_cells(hidden(source))
    return result, checked, nb, resources


def _executor(plan: Plan, sockets: str, log: Path, limits: Limits | None = None, skip: range = range(0)):
    # TensorBoard logs (workshop.log_dir): a folder of the kernel's own, never shared with another kernel
    logs = f"{WORK}/logs" if plan.sandboxed else f"{sockets}/logs"
    return SandboxedExecute(Path(sockets), limits or plan.limits, log,
                            environment={**plan.environment, "WORKSHOP_LOG_DIR": logs},
                            uid=kernel_uid() if os.geteuid() == 0 else None, sandboxed=plan.sandboxed,
                            cgroup=plan.cgroup, skip=skip)


def _keep(plan: Plan, student: str, checked, nb) -> None:
    """Save an executed notebook for the verdicts and nbgrader: as submitted, its probe data, as executed."""
    nbformat.write(checked, plan.runs / f"{student}.submitted.ipynb")
    (plan.runs / f"{student}.probes.json").write_text(json.dumps(collect(nb)))
    nbformat.write(nb, plan.runs / f"{student}.ipynb")


def _execute(plan: Plan, submission: Submission, stop_after: str = "") -> Result:
    with tempfile.TemporaryDirectory(prefix="grade-") as sockets:
        result, checked, nb, resources = _prepare(plan, submission, sockets)
        if nb is None:
            return result
        executor = _executor(plan, sockets, plan.runs / f"{submission.student}.log",
                             skip=after_tests(nb, stop_after) if stop_after else range(0))
        nb, _ = executor.preprocess(nb, resources)
    run = executor.run
    result.outcome, result.cell, result.detail, result.seconds = run.outcome, run.cell, run.detail, run.seconds
    result.transient = run.transient
    if run.outcome == "crashed":
        result.detail += f"; the kernel's own output is in runs/{submission.student}.log"
    if not result.transient:
        _keep(plan, submission.student, checked, nb)
    return result


def execute_branches(plan: Plan, reference: Submission, tasks: list[tuple[Submission, str, str]],
                     reference_key: str = "") -> tuple[Result | None, list[Result]]:
    """Execute stopped submissions (submission, key, exercise) as branches of one kernel (grader.branches).
    One that differs from the solution elsewhere than in its exercise, or all of them if the shared kernel does
    not run through, is executed alone instead. With `reference_key`, the kernel also runs the solution's cells
    after the last branch and every probe: that is the reference's run, returned first (else None)."""
    alone, members, kept = [], [], []
    where = replace(plan, runs=reference.path.parent)  # the reference's own folder
    with tempfile.TemporaryDirectory(prefix="grade-") as sockets:
        own, own_checked, base, resources = _prepare(plan, reference, sockets)
        for task in tasks:
            submission, key, exercise = task
            result, checked, nb, _ = _prepare(plan, submission, sockets)
            if nb is None:
                alone.append(task)
                continue
            start, end = branches.answer_cell(nb, exercise), after_tests(nb, exercise).start
            if not branches.differs_only_in(nb, base, start, end):
                alone.append(task)
                continue
            members.append((nb, exercise, end))
            kept.append((task, result, checked))
        results, solution = [], None
        if members:
            notebook, origin = branches.driver(base, members, whole=bool(reference_key))
            share = len(members) + 2
            limits = replace(plan.limits, wall_seconds=plan.limits.wall_seconds * share,
                             cpu_seconds=plan.limits.cpu_seconds * share, output_mb=plan.limits.output_mb * share)
            executor = _executor(plan, sockets, plan.runs / f"{kept[0][0][0].student}.branches.log", limits)
            executed, _ = executor.preprocess(notebook, resources)
            if executor.run.outcome == "graded":
                seconds, shared = branches.split(executed, origin, base, members)
                for (nb, _, _), ((submission, key, _), result, checked), spent in zip(members, kept, seconds):
                    result.seconds = spent
                    result.origin, result.key, result.notes = submission.origin, key, [*submission.notes,
                                                                                         *result.notes]
                    _keep(plan, submission.student, checked, nb)
                    results.append(result)
                if reference_key:
                    own.seconds, own.origin, own.key = shared, reference.origin, reference_key
                    _keep(where, REFERENCE, own_checked, base)
                    solution = own
            else:
                alone += [task for task, _, _ in kept]
    if reference_key and solution is None:
        solution = execute_one(where, reference, reference_key)
    return solution, results + [execute_one(plan, *task) for task in alone]


class LoadExecuted(NbGraderPreprocessor):
    """nbgrader autograde's execution step, replaced: take the outputs from the sandboxed run of this notebook,
    and give each graded test cell its verdict from the hidden checks (grader.verdicts) as its last output. Of
    what the kernel put in a test cell, only printed text and displays stay (nbgrader would score errors, stderr
    and a returned value); the verdict decides: an error output if the check failed, none if it passed."""

    runs = Unicode(help="folder of executed notebooks, one per student").tag(config=True)

    def preprocess(self, nb, resources):
        run = Path(self.runs) / resources["nbgrader"]["student"]
        executed = nbformat.read(f"{run}.ipynb", as_version=4)
        verdicts = json.loads(Path(f"{run}.verdicts.json").read_text())
        if [without_hidden(c.source) for c in executed.cells] != [without_hidden(c.source) for c in nb.cells]:
            raise ValueError("the executed notebook does not match the sanitized submission")
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type != "code":
                continue
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                passed, why = verdicts.get(meta["grade_id"], (False, "no verdict for this test"))
                cell.outputs = [o for o in cell.outputs if o.output_type == "display_data" or
                                o.output_type == "stream" and o.name == "stdout"]
                cell.outputs.append(new_output("stream", name="stdout", text="Hidden checks: passed.\n") if passed
                                    else new_output("error", ename="HiddenCheckFailed", evalue=why,
                                                    traceback=[f"HiddenCheckFailed: {why}"]))
        return nb, resources


class HideTests(NbGraderPreprocessor):
    """For feedback: drop hidden tests from the test cells, and tracebacks (which quote them) from all errors."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.source = without_hidden(cell.source)
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


def write_course(course: Path, assignment: str, runs: Path) -> None:
    """A private nbgrader course: the source notebook, the gradebook, and configuration for our steps."""
    (course / "source" / assignment).mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOLUTIONS / assignment / f"{assignment}.ipynb", course / "source" / assignment)
    steps = ["grader.grade.LoadExecuted", "nbconvert.preprocessors.sanitize.SanitizeHTML",
             "nbgrader.preprocessors.IgnorePattern", "nbconvert.preprocessors.ClearMetadataPreprocessor",
             "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
             "nbgrader.preprocessors.AssignLatePenalties", "nbgrader.preprocessors.CheckCellMetadata"]
    feedback = ["nbgrader.preprocessors.GetGrades", "grader.grade.HideTests",
                "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '__pycache__']\n"
        "c.HTMLExporter.sanitize_html = True  # feedback and formgrader: no live markup in outputs\n"
        "c.HTMLExporter.filters = {'markdown2html': 'grader.reports.safe_markdown2html'}  # nor in Markdown\n"
        f"c.Autograde.autograde_preprocessors = {steps!r}\n"
        "c.Autograde.create_student = True\n"
        "c.OverwriteCells.add_missing_cells = True\n"
        f"c.LoadExecuted.runs = {str(runs)!r}\n"
        f"c.GenerateFeedback.preprocessors = {feedback!r}\n"
    )
    if not (course / "gradebook.db").exists():
        _generate(course, assignment, runs)


def _generate(course: Path, assignment: str, runs: Path) -> None:
    """nbgrader generate_assignment in `course`: its gradebook and release folder, copied from COURSES where an
    earlier grading generated them from the same inputs (the source notebook, the course's settings without its
    paths, the shared configuration and its environment, nbgrader's version). Generating takes seconds of
    nbgrader's start and alembic's, and every grading of an assignment would repeat it."""
    import nbgrader as package

    settings = (course / "nbgrader_config.py").read_text().replace(str(course), "COURSE").replace(str(runs), "RUNS")
    key = hashlib.sha256()
    for part in [(SOLUTIONS / assignment / f"{assignment}.ipynb").read_bytes(), settings.encode(),
                 (COMMON / "nbgrader_config.py").read_bytes(), package.__version__.encode(),
                 *(os.environ.get(name, "").encode() for name in ("WORKSHOP_COURSE_ID", "WORKSHOP_EXCHANGE"))]:
        key.update(hashlib.sha256(part).digest())
    cached = COURSES / f"{assignment}-{key.hexdigest()[:24]}"
    if not (cached / "gradebook.db").exists():
        nbgrader("generate_assignment", assignment, "--force", cwd=course)
        COURSES.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f"{assignment}-", dir=COURSES))
        shutil.copytree(course / "release", building / "release")
        shutil.copy2(course / "gradebook.db", building)
        with contextlib.suppress(OSError):  # another grading kept the same meanwhile
            os.rename(building, cached)
        shutil.rmtree(building, ignore_errors=True)
        return
    shutil.copytree(cached / "release", course / "release", dirs_exist_ok=True)
    shutil.copy2(cached / "gradebook.db", course / "gradebook.db")


def scores(course: Path, assignment: str) -> dict[str, tuple[float, float, dict[str, float], dict[str, float]]]:
    """Student -> (score, max score, score per exercise, max per exercise) from the gradebook; an exercise's test
    cells are named EXERCISE-test..."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(assignment):
            per: dict[str, float] = {}
            most: dict[str, float] = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    exercise = grade.name.split("-test")[0]
                    per[exercise] = per.get(exercise, 0.0) + (grade.score or 0.0)
                    most[exercise] = most.get(exercise, 0.0) + (grade.max_score or 0.0)
            found[submission.student.id] = (submission.score, submission.max_score, per, most)
    return found


def _record(runs: Path, student: str) -> dict | None:
    """The kept result of a student's execution in `runs`, if any."""
    record = runs / f"{student}.json"
    return json.loads(record.read_text()) if record.exists() else None


def _same_as_reference(reference: Submission, submission: Submission, key: str, runs: Path) -> Result:
    """A submission identical to the solution: the reference's execution, under its own name."""
    kept = reference.path.parent
    for suffix in (".ipynb", ".probes.json", ".submitted.ipynb"):
        if (kept / f"{REFERENCE}{suffix}").exists():
            shutil.copyfile(kept / f"{REFERENCE}{suffix}", runs / f"{submission.student}{suffix}")
    done = _record(kept, REFERENCE) or asdict(Result(REFERENCE, "", outcome="crashed", transient=True,
                                                     detail="the solution's own run failed"))
    return replace(Result(**done), student=submission.student, origin=submission.origin, key=key,
                   notes=[*submission.notes, "the same notebook as the solution: its run is the solution's"])


def _reference(plan: Plan, folder: Path) -> Submission:
    """The solution, as a submission of its own: the released notebook with the source's answers."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{plan.assignment}.ipynb"
    answers = solution_cells(nbformat.read(SOLUTIONS / plan.assignment / name, as_version=4))
    text = io.StringIO()  # as nbformat.write writes a file: a submission of the solution has the same bytes
    nbformat.write(fill(nbformat.read(RELEASE / plan.assignment / name, as_version=4), answers), text)
    text = text.getvalue()
    path = folder / f"{REFERENCE}.source.ipynb"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return Submission(REFERENCE, path, "the solution")


def decide(assignment: str, reference: Path, runs: list[Path]) -> None:
    """Run the hidden checks on each run's probe data against the reference's, in a process of their own
    (python -m grader.verdicts); each run gets RUN.verdicts.json. The solution's own run must have gone through."""
    done = _record(reference.parent, reference.name)
    if not done or done["outcome"] != "graded":
        why = f"{done['outcome']}: {done['detail']}" if done else "the tool failed twice (see above); run again"
        raise RuntimeError(f"the solution of {assignment} did not run through ({why}); its log: {reference}.log")
    source = SOLUTIONS / assignment / f"{assignment}.ipynb"
    for start in range(0, len(runs), 500):  # a bounded command line
        subprocess.run([sys.executable, "-m", "grader.verdicts", str(source), f"{reference}.probes.json",
                        *map(str, runs[start:start + 500])], check=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})


def _one_answer_apart(path: Path, exercise: str, answers: dict[str, str]) -> bool:
    """Whether a submission's answer cells are the solution's `answers` but for `exercise`'s."""
    try:
        cells = solution_cells(nbformat.read(path, as_version=4))
    except Exception:  # noqa: BLE001 - an unreadable notebook is no branch (its own run says what is wrong)
        return False
    return cells.keys() == answers.keys() and all(cells[k] == v for k, v in answers.items() if k != exercise)


def chains(tasks: list, count: int) -> list[list]:
    """Stopped submissions (submission, key, exercise) dealt into at most `count` shared kernels, a whole exercise
    to each, in turn."""
    exercises = list(dict.fromkeys(exercise for _, _, exercise in tasks))
    dealt = [[t for t in tasks if exercises.index(t[2]) % count == k] for k in range(min(count, len(exercises)))]
    return [chain for chain in dealt if chain]


def grade(assignment: str, submissions: Path, out: Path, workers: int = os.cpu_count() or 1,
          limits: Limits | None = None, progress: bool = True, fresh: bool = False, profile: str = "quick",
          confinement: Confinement | None = None, stop_after: dict[str, str] | None = None,
          feedback: bool = True, share: int = 0, scheduler: str = "") -> list[Result]:
    """Grade every submission of `assignment`; results and reports go to `out`.

    Executions of an earlier run are reused where nothing they depend on changed (Plan.key), unless `fresh`.
    `confinement` None probes the machine (capabilities()); Confinement.none() grades without a sandbox.
    `stop_after` (student -> exercise, for the mutation gate, grader.mutants) runs those submissions only up to
    that exercise's tests; every probe still runs. With `share` > 0, those that differ from the solution in that
    exercise's answer alone run as branches of that many shared kernels instead, each with its own exercise's
    probes only (grader.branches). `feedback` False writes no feedback pages. `scheduler` (a Dask scheduler's
    address, or local:N) executes on that cluster's workers instead of `workers` local processes, each kernel on
    one thread unless `limits` say otherwise (grader.cluster)."""
    stop_after = stop_after or {}
    if scheduler and (stop_after or share):
        raise ValueError("a cluster grades whole submissions: no stop_after, no shared kernels")
    workers = max(1, workers)
    limits = limits or Limits()
    if not limits.threads:
        limits = replace(limits, threads=1 if scheduler else max(1, (os.cpu_count() or 1) // workers))
    confinement = confinement or capabilities()
    out, submissions = out.resolve(), submissions.resolve()
    course, runs = out / "course", out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    write_course(course, assignment, runs)
    found = collect_zip(submissions, assignment, out / "unpacked") if submissions.suffix == ".zip" else \
        find_submissions(submissions, assignment)
    plan = Plan(assignment, course, runs, limits, kernel_environment(profile, limits), confinement.sandboxed,
                confinement.cgroup > 0)
    reference = _reference(plan, out / "reference")
    at_reference = replace(plan, runs=reference.path.parent)  # the reference's run is kept in a folder of its own
    results: dict[str, Result] = {}
    todo, same = [], []  # to execute; the solution again, whose execution is the reference's
    solution = sha256sum(reference.path)
    for submission in [reference, *found]:
        if submission.refused:
            results[submission.student] = Result(submission.student, "", submission.origin, "refused",
                                                 detail=submission.refused, notes=submission.notes)
            continue
        where = at_reference if submission is reference else plan
        stop = "" if submission is reference else stop_after.get(submission.student, "")
        digest = sha256sum(submission.path)
        key = where.key(digest, stop, shared=bool(share and (stop or submission is reference)))
        done = _record(where.runs, submission.student)
        if submission is not reference and not stop and digest == solution:
            same.append((submission, key))
        elif done and done.get("key") == key and not fresh:
            if submission is not reference:
                results[submission.student] = Result(**done)
        else:
            todo.append((where, submission, key, stop))
    order = list(stop_after)
    if share:  # a stopped submission can branch from the solution's run only if it differs in its exercise alone
        answers = solution_cells(nbformat.read(reference.path, as_version=4))
        branching = [task for task in todo if task[3] and _one_answer_apart(task[1].path, task[3], answers)]
    else:
        branching = []
    branched = sorted((task[1:] for task in branching), key=lambda t: order.index(t[0].student))
    todo = [task for task in todo if task not in branching]
    dealt = chains(branched, share)
    in_driver = next((task[2] for task in todo if task[1] is reference), "") if dealt else ""
    todo = [task for task in todo if not (in_driver and task[1] is reference)]

    def keep(result: Result, where: Plan) -> None:
        record = where.runs / f"{result.student}.json"
        if result.transient:
            record.unlink(missing_ok=True)
        else:
            record.with_suffix(".part").write_text(json.dumps(asdict(result)))
            os.replace(record.with_suffix(".part"), record)
        if where is plan:
            results[result.student] = result

    with contextlib.ExitStack() as stack:
        if scheduler:
            from grader import cluster  # Dask distributed, only when asked for

            client = stack.enter_context(cluster.connect(scheduler))
            slots = len(cluster.admit(client, plan))
            print(f"Dask cluster: {slots} workers may grade; dashboard {client.dashboard_link}", flush=True)
            pool = stack.enter_context(cluster.ClusterPool(client, course))
        else:
            slots, pool = workers, stack.enter_context(ProcessPoolExecutor(max_workers=workers))
        futures = {pool.submit(execute_branches, plan, reference, chain, in_driver if k == 0 else ""): plan
                   for k, chain in enumerate(dealt)}
        futures |= {pool.submit(execute_one, *task): task[0] for task in todo}
        with tqdm(total=len(todo) + len(branched) + bool(in_driver), desc=f"grading {assignment}",
                  unit="notebook", disable=not progress) as bar:
            for future in as_completed(futures):
                done, where = future.result(), futures[future]
                if isinstance(done, tuple):  # a shared kernel's: the reference's run (or None), then its members'
                    reference_run, done = done
                    if reference_run is not None:
                        keep(reference_run, at_reference)
                        bar.update()
                for result in done if isinstance(done, list) else [done]:
                    keep(result, where)
                    bar.update()
                failed = sum(r.outcome != "graded" for r in results.values())
                bar.set_postfix_str(f"running {min(slots, bar.total - bar.n)}, failed {failed}")
    for submission, key in same:
        results[submission.student] = _same_as_reference(reference, submission, key, runs)
    executed = [s for s, r in results.items() if (runs / f"{s}.ipynb").exists() and r.outcome not in NOT_RUN
                and not r.transient]
    if executed:
        decide(assignment, reference.path.parent / REFERENCE, [runs / s for s in executed])
    shutil.rmtree(course / "submitted", ignore_errors=True)
    receipts = {s.student: s.receipt for s in found}
    for student in executed:
        target = course / "submitted" / student / assignment
        target.mkdir(parents=True)
        shutil.copyfile(runs / f"{student}.submitted.ipynb", target / f"{assignment}.ipynb")
        for name, text in receipts.get(student, {}).items():  # autograde and feedback carry them along
            (target / name).write_text(text)
    if executed:
        # nbgrader's warnings are about our own steps (test cells restored, checksums of cells whose hidden part
        # we removed, its database session): the summary says what concerns a submission
        env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "PYTHONWARNINGS": "ignore:::nbgrader.api"}
        try:
            nbgrader("autograde", assignment, "--force", cwd=course, log_level="ERROR", **env)
        except subprocess.CalledProcessError:  # nbgrader went on with the others; those it failed are found below
            pass
        if feedback:
            nbgrader("generate_feedback", assignment, "--force", cwd=course, log_level="ERROR", **env)
    pages = out / "feedback"
    shutil.rmtree(pages, ignore_errors=True)
    pages.mkdir()
    for student, (score, most, per, per_most) in scores(course, assignment).items():
        if student in results:
            result = results[student]
            result.score, result.max_score, result.exercises, result.exercise_max = score, most, per, per_most
        page = course / "feedback" / student / assignment / f"{assignment}.html"
        if page.exists():
            shutil.copyfile(page, pages / f"{student}.html")
    for student in executed:  # nbgrader removes what it failed to autograde
        graded = (course / "autograded" / student / assignment / f"{assignment}.ipynb").exists()
        if feedback:
            graded = graded and (pages / f"{student}.html").exists()
        if not graded and results[student].outcome == "graded":
            results[student].outcome, results[student].detail = "crashed", "nbgrader could not grade it (see its log)"
    most = max((r.max_score for r in results.values()), default=0.0)
    for r in results.values():
        r.max_score = r.max_score or most
    return [results[s] for s in sorted(results)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader.grade", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Grade every submission of one assignment, each in a sandbox, in parallel, resumably.",
        epilog="outcomes:\n" + "\n".join(f"  {o:<20} {why}" for o, why in OUTCOMES.items()) +
               "\n\nResults go to OUT: grades.csv, summary.txt and summary.html, feedback/STUDENT.html, nbgrader's "
               "course\n(gradebook.db; formgrader reviews it) and runs/ (the executions, reused by the next run).")
    parser.add_argument("assignment", help="the assignment: a folder of solutions/, such as 01-backprop")
    parser.add_argument("submissions", type=Path, help="a folder of notebooks (NAME.ipynb, NAME/ASSIGNMENT.ipynb, or "
                        "NAME/ASSIGNMENT/ASSIGNMENT.ipynb as nbgrader collect leaves them), "
                        "or an LMS zip download (STUDENT_..._ASSIGNMENT.ipynb entries)")
    parser.add_argument("--out", type=Path, help="where results go (default: graded/ASSIGNMENT)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="kernels run in parallel (default: %(default)s, one per core)")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="the notebooks' profile (default: %(default)s; WORKSHOP_PROFILE is not read)")
    parser.add_argument("--cell-timeout", type=int, default=Limits.cell_seconds,
                        help="seconds one cell may run (default: %(default)s)")
    parser.add_argument("--wall", type=int, default=Limits.wall_seconds,
                        help="seconds the whole notebook may run (default: %(default)s)")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="MB of memory per submission, files in memory included (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="execute every submission again, even if done before")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default="",
                       help="execute on the workers of this Dask scheduler (tcp://HOST:8786); every worker needs "
                            "this repository, its environment and bubblewrap (README: grading on a cluster)")
    where.add_argument("--cluster", metavar="local:N", default="",
                       help="execute on a Dask cluster of N worker processes started on this machine")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run student code WITHOUT a sandbox, with your rights (only where bubblewrap cannot "
                             "run; every report then says so)")
    args = parser.parse_args(argv)
    if args.cluster and not re.fullmatch(r"local:[1-9][0-9]*", args.cluster):
        parser.error(f"--cluster takes local:N, such as local:4, not {args.cluster!r}")
    if args.no_sandbox:
        confinement = Confinement.none(UNSANDBOXED)
    else:
        confinement = capabilities()
        broken = confinement.broken()
        if broken:
            print(f"Refusing to grade: {broken}\nFix that, or grade with --no-sandbox (student code then runs "
                  "with your rights).", file=sys.stderr)
            return 2
    print(confinement.summary(), flush=True)
    limits = Limits(cell_seconds=args.cell_timeout, wall_seconds=args.wall, memory_mb=args.memory)
    out = args.out or REPO / "graded" / args.assignment
    results = grade(args.assignment, args.submissions, out, args.workers, limits, fresh=args.fresh,
                    profile=args.profile, confinement=confinement, scheduler=args.scheduler or args.cluster)
    print(summarise(results, out, args.assignment, confinement.summary()))
    print(f"Gradebook, grades.csv, summary.html and feedback/ in {out}")
    return 0


if __name__ == "__main__":
    from grader import grade as module  # what a cluster's workers unpickle must be grader.grade's, not __main__'s

    sys.exit(module.main())
