"""The grading tool (grader.grade) against adversarial classes (grader.adversarial) of two notebooks, graded at
once: 01-backprop (NumPy, with PyTorch and TensorFlow imported), which also holds every cheat that does not depend
on the assignment's checks (loops, bombs, tampered test cells, every way out of the sandbox and into the reports),
and 10-energy-nets (PyTorch), which holds those that do (the forgers, wrong answers dressed up as right, honest
work).

Every submission ends in its named outcome, no cheat keeps full marks, every forger of verdicts scores exactly
what its wrong answers score (0), honest work keeps full marks, nothing outside the
temporary copies changes, no submission reaches the network, a host socket or the grader's environment, the
submissions stay byte-identical, feedback never shows a hidden test or live markup from a submission, the CSV holds
no formula, and a second run executes nothing again.
"""

import csv
import hashlib
import html
import http.server
import multiprocessing
import os
import re
import socket
import subprocess
import threading

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from grader import reuse
from grader.adversarial import MARKER, SECRET, build_class
from grader.grade import grade
from grader.release import REPO, SOLUTIONS
from grader.reports import summarise
from grader.sandbox import Limits, capabilities

CLASSES = ["01-backprop", "10-energy-nets"]
# what the classes read besides the code (grader.reuse): their notebooks and fixtures, 02's for the wrong-notebook case
READS = [f"{kind}/{a}" for a in CLASSES for kind in ("solutions", "notebooks", "grader/fixtures")]
pytestmark = pytest.mark.reusable(*READS, "notebooks/02-cnn")
WORKERS = {"01-backprop": 3, "10-energy-nets": 1}  # 42 submissions and 12: both gradings end at about the same time
SECOND = "what does not depend on the assignment's checks runs in the first class only"
CELL_SECONDS = 40  # the longest cell of either takes under 8 s in CI; each of the three loops costs this much
FOUND = capabilities()
if FOUND.broken() or not FOUND.cgroup or os.geteuid() != 0:
    why = f"needs bubblewrap, a cgroup and root: {FOUND.summary()}"
    if os.environ.get("WORKSHOP_REQUIRE_SANDBOX") == "1":
        raise RuntimeError(why)
    pytest.skip(why, allow_module_level=True)


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if not p.is_symlink()}


def repository_state():
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


def listen(path) -> tuple[socket.socket, list]:
    """A Unix socket of the host's that records who connects."""
    server, seen = socket.socket(socket.AF_UNIX), []
    server.bind(str(path))
    server.listen()

    def accept():
        while True:
            try:
                seen.append(server.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, seen


def _set_up(assignment, tmp_path_factory) -> dict:
    """One class written, with a local answers server and a host socket its cheats try to reach."""
    requests = []

    class Answers(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"answers")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder, out, host = (tmp_path_factory.mktemp(name) for name in ("class", "graded", "host"))
    other = host / "graded" / "02-cnn" / "course" / "gradebook.db"  # another assignment's results
    other.parent.mkdir(parents=True)
    other.write_text("grades")
    unix, connections = listen(host / "host.sock")
    generic = assignment == CLASSES[0]
    expected = build_class(assignment, folder, out, other="02-cnn", server=f"http://127.0.0.1:{server.server_port}",
                           generic=generic, elsewhere=[str(other), "/etc/shadow"], host_socket=str(host / "host.sock"))
    return {"assignment": assignment, "expected": expected, "folder": folder, "out": out, "before": digest(folder),
            "requests": requests, "connections": connections, "generic": generic, "server": server, "unix": unix}


def _grade_in_a_process(queue, assignment, folder, out) -> None:
    try:
        queue.put(grade(assignment, folder, out, workers=WORKERS[assignment], limits=Limits(cell_seconds=CELL_SECONDS),
                        progress=False))
    except BaseException as error:  # noqa: BLE001 - the test process reports it
        queue.put(error)


@pytest.fixture(scope="module")
def classes(request, tmp_path_factory):
    """Both classes (those still to test, grader.reuse) graded at once, as two instructors might on one machine,
    each by grader.grade in a process of its own (forked before any grading, so that a grading's workers fork from
    a process without the servers' threads). One class's fork bomb must not touch the other's kernels; and one
    grading's single-process steps (verdicts, nbgrader) leave a core to the other."""
    found = {assignment: _set_up(assignment, tmp_path_factory) for assignment in CLASSES
             if assignment in reuse.selected(request, "graded")}
    repository = repository_state()
    saved = {k: os.environ.get(k) for k in (SECRET, "WORKSHOP_PROFILE")}
    os.environ |= {SECRET: "s3cret-of-the-instructor", "WORKSHOP_PROFILE": "full"}  # neither may reach a kernel
    context = multiprocessing.get_context("fork")
    try:
        running = {}
        for assignment, one in found.items():
            queue = context.Queue()
            process = context.Process(target=_grade_in_a_process, args=(queue, assignment, one["folder"], one["out"]))
            process.start()
            running[assignment] = (process, queue)
        for assignment, (process, queue) in running.items():
            results = queue.get(timeout=3600)
            process.join()
            if isinstance(results, BaseException):
                raise results
            found[assignment] |= {"results": {r.student: r for r in results}, "repository": repository}
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.update({key: value})
        for one in found.values():
            one.pop("server").shutdown()
            one.pop("unix").close()
    for assignment, one in found.items():
        print("\n" + summarise(list(one["results"].values()), one["out"], assignment, FOUND.summary()))
    return found


@pytest.fixture(scope="module", params=CLASSES)
def graded(request, classes):
    return classes[request.param]


def executed_text(graded, student) -> str:
    """Everything the kernel printed or displayed for one submission."""
    notebook = nbformat.read(graded["out"] / "runs" / f"{student}.ipynb", as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    return "".join(o.text if o.output_type == "stream" else f"\n{o}\n" for o in outputs)


def test_every_submission_ends_in_its_outcome(graded):
    assert {e.student for e in graded["expected"]} == set(graded["results"]), "a submission was lost or added"
    for e in graded["expected"]:
        got = graded["results"][e.student]
        assert got.outcome == e.outcome, f"{e.student} ({e.what}): {got.outcome} {got.detail}, not {e.outcome}"
        if e.outcome != "graded":
            assert got.detail, f"{e.student}: the outcome {got.outcome} comes without a reason"


def test_no_cheat_keeps_full_marks_and_honest_work_does(graded):
    assert graded["results"]["wrong-everywhere"].score == 0, "a wrong answer in every exercise scores 0"
    for e in graded["expected"]:
        got = graded["results"][e.student]
        assert got.max_score > 0
        if e.honest:
            assert got.score == got.max_score, f"{e.student} ({e.what}) lost points: {got.notes}"
        else:
            assert got.score < got.max_score, f"{e.student} ({e.what}) scored full marks"
        if e.forged:
            assert got.score == 0, f"{e.student} ({e.what}) forged {got.score} points: {got.exercises}"


def test_hidden_tests_never_run_in_a_kernel(graded):
    for e in graded["expected"]:
        run = graded["out"] / "runs" / f"{e.student}.ipynb"
        if run.exists():
            cells = nbformat.read(run, as_version=4).cells
            assert not any("HIDDEN TESTS" in c.source or "workshop" in c.get("metadata", {}) for c in cells), e.student
    assert "CELL" in (graded["out"] / "feedback" / "leaks-hidden.html").read_text(), "the leaking hook did not run"


def test_tampered_test_cells_are_restored_and_noted(graded):
    if not graded["generic"]:
        pytest.skip(SECOND)
    for student, word in [("deletes-test", "missing"), ("edits-test", "modified"), ("repoints-test", "re-pointed")]:
        notes = graded["results"][student].notes
        assert any(word in note and "restored" in note for note in notes), f"{student}: {notes}"


def test_nothing_outside_the_copies_changed(graded):
    assert digest(graded["folder"]) == graded["before"], "a submitted file was modified"
    assert repository_state() == graded["repository"], "the repository changed during grading"
    for place in (REPO, graded["folder"], graded["out"]):
        assert not (place / "PWNED").exists()
    assert graded["requests"] == [], "a submission reached the network"
    assert graded["connections"] == [], "a submission reached a Unix socket of the host"


def test_the_grader_environment_never_reaches_a_kernel(graded):
    for path in graded["out"].rglob("*"):
        if path.is_file():
            assert b"s3cret-of-the-instructor" not in path.read_bytes(), f"the grader's secret is in {path}"
    if graded["generic"]:
        shown = executed_text(graded, "prints-environment")
        assert "('WORKSHOP_PROFILE', 'quick')" in shown and SECRET not in shown


def test_the_sockets_folder_was_locked_before_student_code_ran(graded):
    if not graded["generic"]:
        pytest.skip(SECOND)
    assert "SOCKETS 30" in executed_text(graded, "fills-sockets")  # EROFS


def test_a_kernel_sees_only_its_own_processes(graded):
    if not graded["generic"]:
        pytest.skip(SECOND)
    shown = executed_text(graded, "reads-proc")
    count = int(re.search(r"PROCESSES (\d+)", shown)[1])
    assert count <= 3 and "pytest" not in shown and "grader" not in shown, shown[:500]


def test_reports_carry_no_live_markup_and_no_formula(graded):
    if not graded["generic"]:
        pytest.skip(SECOND)
    assignment, course = graded["assignment"], graded["out"] / "course"
    from nbconvert import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.HTMLExporter.template_name = "formgrade"  # as nbgrader's formgrader renders a submission
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    autograded = course / "autograded" / "xss" / assignment / f"{assignment}.ipynb"
    formgrader_page, _ = HTMLExporter(config=config).from_filename(
        str(autograded), resources={"base_url": "", "student": "xss", "index": 0, "total": 1})
    pages = {"feedback": (graded["out"] / "feedback" / "xss.html").read_text(), "formgrader": formgrader_page,
             "summary": (graded["out"] / "summary.html").read_text()}
    for name, page in pages.items():
        assert not re.search(r"<[^>]*\sonerror\s*=", page, re.IGNORECASE), f"{name}: an onerror attribute"
        assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", page, re.IGNORECASE), f"{name}: a javascript: link"
        for script in re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL | re.IGNORECASE):
            assert MARKER not in script, f"{name}: the student's script is live"
    assert MARKER in pages["feedback"], "the student's markup should still be shown, as text"
    with open(graded["out"] / "grades.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    formula = next(row for row in rows if row[0] == "HYPERLINK_1_1")
    assert formula[rows[0].index("origin")] == "'=HYPERLINK(1+1).ipynb"


def test_clashing_ids_and_links_lose_nothing(graded):
    if not graded["generic"]:
        pytest.skip(SECOND)
    results = graded["results"]
    assert results["a_b"].origin == "a b.ipynb" and results["a_b-2"].origin == "a_b.ipynb"
    assert any("graded as a_b-2" in note for note in results["a_b"].notes)
    assert any("graded as a_b-2" in note for note in results["a_b-2"].notes)
    assert "symbolic link" in results["linked"].detail


def test_feedback_never_shows_hidden_tests(graded):
    solution = SOLUTIONS / graded["assignment"] / f"{graded['assignment']}.ipynb"
    source = "\n".join(c.source for c in nbformat.read(solution, 4).cells)
    blocks = re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", source, re.DOTALL)
    visible = {line.strip() for line in re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", source,
                                               flags=re.DOTALL).splitlines()}
    hidden = {line.strip() for block in blocks for line in block.splitlines()} - visible  # only in hidden tests
    hidden = [line for line in hidden if len(line) > 20 and not any(line in v for v in visible)]
    pages = sorted((graded["out"] / "feedback").glob("*.html"))
    assert len(pages) >= 10 and hidden
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page.name} shows hidden tests: {leaked[:2]}"


def test_a_second_run_executes_nothing_and_agrees(graded):
    runs = graded["out"] / "runs"
    records = [p for p in runs.glob("*.json") if not p.name.endswith((".probes.json", ".verdicts.json"))]
    stamps = {p.name: p.stat().st_mtime_ns for p in records}
    again = grade(graded["assignment"], graded["folder"], graded["out"], workers=WORKERS[graded["assignment"]],
                  limits=Limits(cell_seconds=CELL_SECONDS), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in records} == stamps, "a second run executed again"
    for r in again:
        first = graded["results"][r.student]
        assert (r.outcome, r.score) == (first.outcome, first.score), r.student
