"""Grade a class: python -m grader.grade ASSIGNMENT SUBMISSIONS [--out DIR] [--workers N] (or `make grade`).

SUBMISSIONS is a folder (NAME.ipynb per student, or NAME/ASSIGNMENT.ipynb) or an LMS zip download (files named
STUDENT_..._ASSIGNMENT.ipynb, collected by `nbgrader zip_collect`). nbgrader does the grading; this tool adds:
1. every submission copied, checked (readable notebook, right assignment, test cells intact) and executed in
   parallel, each kernel in grader.sandbox with limits, in a folder of its own (grader.execute);
2. one `nbgrader autograde` over the executed notebooks, so a single process writes the gradebook;
3. feedback without hidden tests, a CSV, and a summary with every submission's outcome.
Submissions are never modified. Results of step 1 are kept under OUT/runs, keyed by the submission's sha256, so a
second run, or a run after an interruption, only executes what is new.
"""

import argparse
import base64
import csv
import html
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import nbformat
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

from grader.execute import SandboxedExecute
from grader.release import GRADER, RELEASE, REPO, SOLUTIONS, nbgrader
from grader.sandbox import FIRST_UID, Limits, capabilities
from grader.tamper import suspicious
from workshop.data import sha256sum

OUTCOMES = ("graded", "tampering suspected", "timed out", "crashed", "resource limit", "malformed notebook",
            "wrong assignment")
NOT_RUN = ("malformed notebook", "wrong assignment")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS")
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.MULTILINE | re.DOTALL)


@dataclass
class Result:
    """What happened to one submission."""

    student: str
    sha256: str
    outcome: str = "graded"
    cell: int | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)  # restored test cells, suspected tampering
    seconds: float = 0.0
    score: float = 0.0
    max_score: float = 0.0
    exercises: dict[str, float] = field(default_factory=dict)


def student_id(name: str) -> str:
    """A folder-safe student id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._") or "unnamed"


def find_submissions(folder: Path, assignment: str) -> dict[str, Path]:
    """Student id -> submitted notebook, from NAME.ipynb or NAME/ASSIGNMENT.ipynb (or NAME/*.ipynb)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix == ".ipynb":
            found[student_id(path.stem)] = path
        elif path.is_dir():
            inside = [path / f"{assignment}.ipynb", *sorted(path.glob("*.ipynb"))]
            chosen = next((p for p in inside if p.is_file()), None)
            if chosen:
                found[student_id(path.name)] = chosen
    return found


def collect_zip(archive: Path, assignment: str, course: Path) -> dict[str, Path]:
    """Unpack an LMS download with `nbgrader zip_collect`; returns student id -> collected notebook."""
    target = course / "downloaded" / assignment / "archive"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(archive, target / archive.name)
    with zipfile.ZipFile(archive) as z:  # refuse archives with paths that leave the folder
        if any(Path(n).is_absolute() or ".." in Path(n).parts for n in z.namelist()):
            raise SystemExit(f"{archive}: refusing an archive with absolute or '..' paths")
    nbgrader("zip_collect", assignment, "--force", "--CourseDirectory.submitted_directory=collected", cwd=course)
    return {p.parent.parent.name: p for p in sorted((course / "collected").glob(f"*/{assignment}/*.ipynb"))}


def test_cells(nb) -> dict[str, str]:
    """grade_id -> source of the locked, graded (test) cells of a notebook."""
    cells = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("locked") and not meta.get("solution"):
            cells[meta["grade_id"]] = cell.source
    return cells


def inspect(nb, release) -> tuple[str, list[str]]:
    """Outcome so far ("graded" or "wrong assignment") and notes on missing, modified or re-pointed test cells.

    A re-pointed test cell (its nbgrader metadata changed, say to ungraded) gets its metadata back here, so that
    nbgrader restores its source as for any modified test cell."""
    released = {c.get("id"): c.metadata["nbgrader"] for c in release.cells
                if c.metadata.get("nbgrader", {}).get("locked")}
    notes = []
    for cell in nb.cells:
        original = released.get(cell.get("id"))
        if original and cell.get("metadata", {}).get("nbgrader") != original:
            cell.setdefault("metadata", {})["nbgrader"] = original
            notes.append(f"test cell {original['grade_id']} re-pointed (restored)")
    given, got = test_cells(release), test_cells(nb)
    graded_ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells}
    if not graded_ids & {c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells} - {None}:
        return "wrong assignment", []
    notes += [f"test cell {g} missing (restored)" for g in given if g not in got]
    notes += [f"test cell {g} modified (restored)" for g in given if g in got and got[g] != given[g]]
    return "graded", notes


_slot = 0


def _take_slot(slots) -> None:
    global _slot
    _slot = slots.get()


def execute_one(assignment: str, student: str, submitted: Path, course: Path, runs: Path, limits: Limits,
                hidden: list[Path]) -> Result:
    """Check, sanitize (nbgrader) and execute one submission in the sandbox; save the executed notebook."""
    try:
        return _execute(assignment, student, submitted, course, runs, limits, hidden)
    except Exception as error:  # noqa: BLE001 - one broken submission must not stop the class
        why = f"grading failed: {type(error).__name__}: {error}"
        return Result(student, sha256sum(submitted), "crashed", None, why)


def _execute(assignment, student, submitted, course, runs, limits, hidden) -> Result:
    result = Result(student, sha256sum(submitted))
    try:
        nb = nbformat.read(submitted, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a malformed notebook
        result.outcome, result.detail = "malformed notebook", f"{type(error).__name__}: {str(error)[:200]}"
        return result
    release = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    result.outcome, result.notes = inspect(nb, release)
    if result.outcome != "graded":
        result.detail = f"none of its graded cells belongs to {assignment}"
        return result
    tampering = suspicious(nb, release)
    checked = nbformat.from_dict(nb)  # as submitted, with re-pointed test cells' metadata restored
    resources = {"nbgrader": {"db_url": f"sqlite:///{course / 'gradebook.db'}", "assignment": assignment,
                              "notebook": assignment, "student": student}}
    with tempfile.TemporaryDirectory(prefix=f"grade-{student}-") as work:
        resources["metadata"] = {"path": work}
        try:
            for step in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells(add_missing_cells=True),
                         CheckCellMetadata()):
                nb, resources = step.preprocess(nb, resources)
        except Exception as error:  # noqa: BLE001 - nbgrader rejects tampered metadata with assorted errors
            result.outcome, result.detail = "malformed notebook", f"nbgrader: {str(error)[:200]}"
            return result
        uid = FIRST_UID + _slot if os.geteuid() == 0 else None
        # grading runs the quick profile unless told otherwise; TensorFlow's start-up log would land on stderr,
        # and nbgrader gives 0 to a test cell with output on stderr
        environment = {"WORKSHOP_PROFILE": os.environ.get("WORKSHOP_PROFILE", "quick"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        # parallel kernels that each spread over every core slow each other down: give each its share
        environment |= dict.fromkeys(THREAD_VARIABLES, str(limits.threads))
        executor = SandboxedExecute(Path(work), limits, hidden, uid=uid, environment=environment)
        nb, _ = executor.preprocess(nb, resources)
    nbformat.write(checked, runs / f"{student}.submitted.ipynb")
    run = executor.run
    result.outcome, result.cell, result.detail, result.seconds = run.outcome, run.cell, run.detail, run.seconds
    if tampering:
        result.notes += [f"tampering suspected: {finding}" for finding in tampering]
        if run.outcome == "graded":
            result.outcome, result.detail = "tampering suspected", "score set to 0 for review; see notes"
    nbformat.write(nb, runs / f"{student}.ipynb")
    return result


class LoadExecuted(NbGraderPreprocessor):
    """nbgrader autograde's execution step, replaced: take the outputs from the sandboxed run of this notebook."""

    runs = Unicode(help="folder of executed notebooks, one per student").tag(config=True)

    def preprocess(self, nb, resources):
        executed = nbformat.read(Path(self.runs) / f"{resources['nbgrader']['student']}.ipynb", as_version=4)
        if [c.source for c in executed.cells] != [c.source for c in nb.cells]:
            raise ValueError("the executed notebook does not match the sanitized submission")
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
        return nb, resources


class HideTests(NbGraderPreprocessor):
    """For feedback: drop hidden tests from the test cells, and tracebacks (which quote them) from all errors."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.source = HIDDEN.sub("", cell.source)
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


def write_course(course: Path, assignment: str, runs: Path) -> None:
    """A private nbgrader course: the source notebook, the gradebook, and configuration for our steps."""
    (course / "source" / assignment).mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOLUTIONS / assignment / f"{assignment}.ipynb", course / "source" / assignment)
    steps = ["grader.grade.LoadExecuted", "nbgrader.preprocessors.IgnorePattern",
             "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
             "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
             "nbgrader.preprocessors.CheckCellMetadata"]
    feedback = ["nbgrader.preprocessors.GetGrades", "grader.grade.HideTests",
                "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.course_id = {assignment!r}\n"
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '__pycache__']\n"
        "c.ZipCollectApp.collector_plugin = 'nbgrader.plugins.FileNameCollectorPlugin'\n"
        "c.FileNameCollectorPlugin.named_regexp = "
        r"r'^.*/(?P<student_id>[^_/]+)_(?:[^/]*_)?(?P<file_id>[^/_]+\.ipynb)$'" "\n"
        f"c.Autograde.autograde_preprocessors = {steps!r}\n"
        "c.Autograde.create_student = True\n"
        "c.OverwriteCells.add_missing_cells = True\n"
        f"c.LoadExecuted.runs = {str(runs)!r}\n"
        f"c.GenerateFeedback.preprocessors = {feedback!r}\n"
    )
    if not (course / "gradebook.db").exists():
        nbgrader("generate_assignment", assignment, "--force", cwd=course)


def withhold(course: Path, assignment: str, students: list[str]) -> None:
    """Give these students 0 as a manual score on every graded cell: it overrides the automatic score, and the
    instructor can change it in nbgrader's formgrader after review."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            for notebook in gb.find_submission(assignment, student).notebooks:
                for grade in notebook.grades:
                    grade.manual_score = 0.0
        gb.db.commit()


def scores(course: Path, assignment: str) -> dict[str, tuple[float, float, dict[str, float]]]:
    """Student -> (score, max score, score per exercise) from the gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(assignment):
            per: dict[str, float] = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    exercise = grade.name.split("-test")[0]
                    per[exercise] = per.get(exercise, 0.0) + (grade.score or 0.0)
            found[submission.student.id] = (submission.score, submission.max_score, per)
    return found


def histogram_png(values: list[float], most: float, title: str) -> str:
    """A small histogram as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.2))
    ax.hist(values, bins=max(int(most), 1) + 1, range=(0, most + 1e-9) if most else None, color="#4477aa")
    ax.set(title=title, xlabel="points", ylabel="students")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def summarise(results: list[Result], out: Path, assignment: str) -> str:
    """Write grades.csv, summary.txt and summary.html; return the text summary."""
    exercises = sorted({e for r in results for e in r.exercises})
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "score", "max_score", "outcome", "cell", "detail", "notes", *exercises])
        for r in results:
            writer.writerow([r.student, r.score, r.max_score, r.outcome, "" if r.cell is None else r.cell, r.detail,
                             "; ".join(r.notes), *(r.exercises.get(e, 0.0) for e in exercises)])
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    lines = [f"{assignment}: {len(results)} submissions; " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)]
    width = max((len(r.student) for r in results), default=7)
    for r in results:
        where = f" in cell {r.cell}" if r.cell is not None else ""
        why = f" ({r.detail})" if r.detail else ""
        notes = f"; {'; '.join(r.notes)}" if r.notes else ""
        lines.append(f"  {r.student:<{width}} {r.score:5.1f} / {r.max_score:4.1f}  {r.outcome}{where}{why}{notes}")
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    most = {e: max((r.exercises.get(e, 0.0) for r in results), default=0.0) for e in exercises}
    figures = "".join(
        f'<img alt="{html.escape(e)}" src="data:image/png;base64,'
        f'{histogram_png([r.exercises.get(e, 0.0) for r in results], most[e], e)}">'
        for e in exercises
    )
    rows = "".join(
        f"<tr><td>{html.escape(r.student)}</td><td>{r.score:g} / {r.max_score:g}</td><td>{html.escape(r.outcome)}</td>"
        f"<td>{'' if r.cell is None else r.cell}</td><td>{html.escape(r.detail)}</td>"
        f"<td>{html.escape('; '.join(r.notes))}</td></tr>"
        for r in results
    )
    (out / "summary.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(assignment)}</title>"
        f"<h1>{html.escape(assignment)}</h1><p>{html.escape(lines[0])}</p><div>{figures}</div>"
        "<table border=1 cellpadding=4><tr><th>student</th><th>score</th><th>outcome</th><th>cell</th>"
        f"<th>detail</th><th>notes</th></tr>{rows}</table>\n"
    )
    return text


def grade(assignment: str, submissions: Path, out: Path, workers: int = os.cpu_count() or 1,
          limits: Limits | None = None, progress: bool = True, fresh: bool = False) -> list[Result]:
    """Grade every submission of `assignment`; results and reports go to `out`.

    Submissions executed by an earlier run (same file, same sha256) are not executed again unless `fresh`."""
    workers = max(1, workers)
    limits = limits or Limits()
    if not limits.threads:
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // workers))
    out, submissions = out.resolve(), submissions.resolve()
    course, runs = out / "course", out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    write_course(course, assignment, runs)
    found = collect_zip(submissions, assignment, course) if submissions.suffix == ".zip" else \
        find_submissions(submissions, assignment)
    hidden = [SOLUTIONS, REPO / ".git", GRADER, out, submissions]
    results: dict[str, Result] = {}
    todo = []
    for student, path in found.items():
        record = runs / f"{student}.json"
        done = json.loads(record.read_text()) if record.exists() and not fresh else None
        if done and done["sha256"] == sha256sum(path):
            results[student] = Result(**done)
        else:
            todo.append((student, path))
    slots = multiprocessing.get_context().Queue()
    for slot in range(workers):
        slots.put(slot)
    with ProcessPoolExecutor(max_workers=workers, initializer=_take_slot, initargs=(slots,)) as pool:
        futures = [pool.submit(execute_one, assignment, s, p, course, runs, limits, hidden) for s, p in todo]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading {assignment}", unit="notebook",
                           disable=not progress):
            result = future.result()
            (runs / f"{result.student}.json.part").write_text(json.dumps(asdict(result)))
            os.replace(runs / f"{result.student}.json.part", runs / f"{result.student}.json")
            results[result.student] = result
    executed = [s for s, r in results.items() if (runs / f"{s}.ipynb").exists() and r.outcome not in NOT_RUN]
    shutil.rmtree(course / "submitted", ignore_errors=True)
    for student in executed:
        target = course / "submitted" / student / assignment
        target.mkdir(parents=True)
        shutil.copyfile(runs / f"{student}.submitted.ipynb", target / f"{assignment}.ipynb")
    if executed:
        env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        try:
            nbgrader("autograde", assignment, "--force", cwd=course, **env)
        except subprocess.CalledProcessError:  # nbgrader went on with the others; those it failed are found below
            pass
        withhold(course, assignment, [s for s in executed if results[s].outcome == "tampering suspected"])
        nbgrader("generate_feedback", assignment, "--force", cwd=course, **env)
    feedback = out / "feedback"
    shutil.rmtree(feedback, ignore_errors=True)
    feedback.mkdir()
    for student, (score, most, per) in scores(course, assignment).items():
        if student in results:
            results[student].score, results[student].max_score, results[student].exercises = score, most, per
        page = course / "feedback" / student / assignment / f"{assignment}.html"
        if page.exists():
            shutil.copyfile(page, feedback / f"{student}.html")
    for student in executed:
        if not (feedback / f"{student}.html").exists() and results[student].outcome == "graded":
            results[student].outcome, results[student].detail = "crashed", "nbgrader could not grade it (see its log)"
    most = max((r.max_score for r in results.values()), default=0.0)
    for r in results.values():
        r.max_score = r.max_score or most
    return [results[s] for s in sorted(results)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment")
    parser.add_argument("submissions", type=Path, help="folder of notebooks, or an LMS zip download")
    parser.add_argument("--out", type=Path, help="where results go (default: graded/ASSIGNMENT)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel kernels (default: cores)")
    parser.add_argument("--cell-timeout", type=int, default=Limits.cell_seconds)
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, help="MB per submission")
    parser.add_argument("--fresh", action="store_true", help="execute every submission again, even if done before")
    args = parser.parse_args(argv)
    missing = {k: v for k, v in capabilities().items() if v}
    print("Sandbox: every limit enforced." if not missing else
          "Sandbox: NOT enforced here: " + "; ".join(f"{k} ({v})" for k, v in missing.items()), flush=True)
    limits = Limits(cell_seconds=args.cell_timeout, memory_mb=args.memory)
    out = args.out or REPO / "graded" / args.assignment
    results = grade(args.assignment, args.submissions, out, args.workers, limits, fresh=args.fresh)
    print(summarise(results, out, args.assignment))
    print(f"Gradebook, grades.csv, summary.html and feedback/ in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
