"""The grading tool (grader.grade) against an adversarial class (grader.adversarial) of two notebooks: 01-backprop
(NumPy, with PyTorch and TensorFlow imported) and 10-energy-nets (PyTorch).

Every submission ends in its named outcome, no cheat keeps full marks, honest work does, nothing outside the
temporary copies changes, the submissions stay byte-identical, feedback never shows a hidden test, and a second
run executes nothing again.
"""

import hashlib
import html
import http.server
import re
import subprocess
import threading
import zipfile

import nbformat
import pytest

from grader.adversarial import build_class
from grader.grade import collect_zip, grade, summarise, write_course
from grader.release import RELEASE, REPO, SOLUTIONS
from grader.sandbox import Limits, capabilities

CLASSES = ["01-backprop", "10-energy-nets"]
CELL_SECONDS = 40  # the longest cell of either takes under 8 s in CI; each of the three loops costs this much
pytestmark = pytest.mark.skipif(any(capabilities().values()), reason=f"sandbox incomplete here: {capabilities()}")


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def repository_state():
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module", params=CLASSES)
def graded(request, tmp_path_factory):
    assignment = request.param
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
    folder, out = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("graded")
    expected = build_class(assignment, folder, out, other="02-cnn", server=f"http://127.0.0.1:{server.server_port}")
    before, repository = digest(folder), repository_state()
    results = grade(assignment, folder, out, workers=2, limits=Limits(cell_seconds=CELL_SECONDS), progress=False)
    server.shutdown()
    print("\n" + summarise(results, out, assignment))
    return {
        "assignment": assignment, "expected": expected, "results": {r.student: r for r in results}, "folder": folder,
        "out": out, "before": before, "repository": repository, "requests": requests,
    }


def test_every_submission_ends_in_its_outcome(graded):
    for e in graded["expected"]:
        got = graded["results"][e.student]
        assert got.outcome == e.outcome, f"{e.student} ({e.what}): {got.outcome} {got.detail}, not {e.outcome}"
        if e.outcome != "graded":
            assert got.detail, f"{e.student}: the outcome {got.outcome} comes without a reason"


def test_no_cheat_keeps_full_marks_and_honest_work_does(graded):
    for e in graded["expected"]:
        got = graded["results"][e.student]
        assert got.max_score > 0
        if e.honest:
            assert got.score == got.max_score, f"{e.student} ({e.what}) lost points: {got.notes}"
        else:
            assert got.score < got.max_score, f"{e.student} ({e.what}) scored full marks"


def test_tampered_test_cells_are_restored_and_noted(graded):
    for student, word in [("deletes-test", "missing"), ("edits-test", "modified"), ("repoints-test", "re-pointed")]:
        notes = graded["results"][student].notes
        assert any(word in note and "restored" in note for note in notes), f"{student}: {notes}"


def test_nothing_outside_the_copies_changed(graded):
    assert digest(graded["folder"]) == graded["before"], "a submitted file was modified"
    assert repository_state() == graded["repository"], "the repository changed during grading"
    for place in (REPO, graded["folder"], graded["out"]):
        assert not (place / "PWNED").exists()
    assert graded["requests"] == [], "a submission reached the network"


def test_feedback_never_shows_hidden_tests(graded):
    solution = SOLUTIONS / graded["assignment"] / f"{graded['assignment']}.ipynb"
    source = "\n".join(c.source for c in nbformat.read(solution, 4).cells)
    blocks = re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", source, re.DOTALL)
    visible = {line.strip() for line in re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", source,
                                               flags=re.DOTALL).splitlines()}
    hidden = {line.strip() for block in blocks for line in block.splitlines()} - visible  # only in hidden tests
    hidden = [line for line in hidden if len(line) > 20]
    pages = sorted((graded["out"] / "feedback").glob("*.html"))
    assert len(pages) >= 10 and hidden
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page.name} shows hidden tests: {leaked[:2]}"


def test_a_second_run_executes_nothing_and_agrees(graded):
    runs = graded["out"] / "runs"
    stamps = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    again = grade(graded["assignment"], graded["folder"], graded["out"], workers=2, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == stamps, "a second run executed again"
    for r in again:
        first = graded["results"][r.student]
        assert (r.outcome, r.score) == (first.outcome, first.score), r.student


def test_an_lms_zip_download_is_collected(tmp_path):
    assignment = CLASSES[0]
    released = (RELEASE / assignment / f"{assignment}.ipynb").read_bytes()
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in (f"alice_1234_5678_{assignment}.ipynb", f"bob_99_{assignment}.ipynb"):
            z.writestr(name, released)
    course = tmp_path / "course"
    write_course(course, assignment, tmp_path / "runs")
    found = collect_zip(archive, assignment, course)
    assert sorted(found) == ["alice", "bob"]
    assert all(path.read_bytes() == released for path in found.values())
