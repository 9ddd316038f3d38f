"""Finding a class's submissions (grader.submissions) loses nothing and trusts nothing: ids are folder- and
spreadsheet-safe, clashing ids are both kept, links and oversized or unnamed archive members are refused with a
reason, the assignment's own notebook wins, nested archives are opened one level deep within one size budget.
And what an execution is cached under (grader.grade.Plan.key) changes with everything that changes its result,
while a failure of the tool's own is tried again and never kept; a generated course is reused only for the
same inputs."""

import io
import json
import stat
import zipfile
from dataclasses import replace

import pytest

from grader import grade as grading
from grader import submissions
from grader.grade import Plan, Result, grade, kernel_environment
from grader.release import RELEASE
from grader.sandbox import Confinement, Limits
from grader.submissions import collect_zip, find_submissions, student_id

ASSIGNMENT = "01-backprop"
NOTEBOOK = (RELEASE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()


@pytest.mark.parametrize("name, wanted", [("alice", "alice"), ("a b", "a_b"), ("=HYPERLINK(1+1)", "HYPERLINK_1_1"),
                                          ("-rf", "rf"), ("../../etc", "etc"), ("@", "unnamed"), ("Zoë", "Zo")])
def test_student_ids_are_safe(name, wanted):
    assert student_id(name) == wanted


def test_a_folder_keeps_clashing_ids_and_refuses_links(tmp_path):
    for name in ("a b.ipynb", "a_b.ipynb", "carol.ipynb"):
        (tmp_path / name).write_bytes(NOTEBOOK)
    (tmp_path / "dave").mkdir()
    (tmp_path / "dave" / "scratch.ipynb").write_bytes(NOTEBOOK)
    (tmp_path / "dave" / f"{ASSIGNMENT}.ipynb").write_bytes(NOTEBOOK)
    (tmp_path / "eve.ipynb").symlink_to(tmp_path / "carol.ipynb")
    (tmp_path / "frank").mkdir()
    (tmp_path / "frank" / f"{ASSIGNMENT}.ipynb").symlink_to(tmp_path / "carol.ipynb")
    found = {s.student: s for s in find_submissions(tmp_path, ASSIGNMENT)}
    assert sorted(found) == ["a_b", "a_b-2", "carol", "dave", "eve", "frank"]
    assert found["a_b"].origin == "a b.ipynb" and found["a_b-2"].origin == "a_b.ipynb"
    assert any("a_b-2" in n for n in found["a_b"].notes) and any("a_b-2" in n for n in found["a_b-2"].notes)
    assert found["dave"].path.name == f"{ASSIGNMENT}.ipynb" and "scratch.ipynb" in found["dave"].notes[0]
    for linked in ("eve", "frank"):
        assert found[linked].path is None and "symbolic link" in found[linked].refused


def test_a_collected_folder_keeps_the_exchange_receipt_only_as_nbgrader_writes_it(tmp_path):
    secret, stamp = "0123456789abcdef" * 8, "2026-12-02 06:30:00.123456 UTC"
    for student, files in {"ada": {"timestamp.txt": stamp, "submission_secret.txt": secret},
                           "bo": {"timestamp.txt": "<script>", "submission_secret.txt": "../../etc/passwd"},
                           "cy": {}}.items():
        folder = tmp_path / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_bytes(NOTEBOOK)
        for name, text in files.items():
            (folder / name).write_text(text)
    (tmp_path / "dee" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "dee" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").symlink_to(found_at := tmp_path / "ada" / ASSIGNMENT)
    found = {s.student: s for s in find_submissions(tmp_path, ASSIGNMENT)}
    assert sorted(found) == ["ada", "bo", "cy", "dee"]
    assert found["ada"].receipt == {"timestamp.txt": stamp, "submission_secret.txt": secret} and not found["ada"].notes
    assert found["ada"].path == found_at / f"{ASSIGNMENT}.ipynb"
    assert found["bo"].receipt == {} and len(found["bo"].notes) == 2 and found["bo"].path is not None
    assert found["cy"].receipt == {} and not found["cy"].notes
    assert found["dee"].path is None and found["dee"].refused


def _zip(entries: dict[str, bytes], links: tuple = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "../../solutions/01-backprop/01-backprop.ipynb")
    return buffer.getvalue()


def test_an_lms_download_is_read_safely(tmp_path, monkeypatch):
    nested = _zip({f"{ASSIGNMENT}.ipynb": NOTEBOOK, "inner.zip": _zip({f"{ASSIGNMENT}.ipynb": NOTEBOOK})})
    # room for everything up to zed's notebook: 5 notebooks, carol's 15 bytes, dave's archive
    monkeypatch.setattr(submissions, "ARCHIVE_BYTES", 5 * len(NOTEBOOK) + 15 + len(nested) + 100)
    archive = tmp_path / "download.zip"
    archive.write_bytes(_zip({
        f"alice_1234_5678_{ASSIGNMENT}.ipynb": NOTEBOOK,
        f"bob_1_{ASSIGNMENT}.ipynb": NOTEBOOK, f"bob_2_{ASSIGNMENT}.ipynb": NOTEBOOK,  # a resubmission
        "carol_9_scratch.ipynb": b"{}", f"carol_9_{ASSIGNMENT}.ipynb": b'{"cells": []}',
        "dave_3_upload.zip": nested,
        "notes.ipynb": NOTEBOOK,
        f"=cmd_7_{ASSIGNMENT}.ipynb": NOTEBOOK,
        f"zed_5_{ASSIGNMENT}.ipynb": NOTEBOOK,  # past the budget
    }, links=[f"mallory_6_{ASSIGNMENT}.ipynb"]))
    found = collect_zip(archive, ASSIGNMENT, tmp_path / "unpacked")
    by_id = {s.student: s for s in found}
    assert sorted(by_id) == ["alice", "bob", "bob-2", "carol", "cmd", "dave", "dave-2", "mallory", "notes", "zed"]
    assert by_id["alice"].path.read_bytes() == NOTEBOOK
    assert {by_id["bob"].origin, by_id["bob-2"].origin} == {f"download.zip:bob_{k}_{ASSIGNMENT}.ipynb" for k in (1, 2)}
    assert by_id["carol"].path.read_bytes() == b'{"cells": []}' and "scratch.ipynb" in by_id["carol"].notes[0]
    assert by_id["dave"].path.read_bytes() == NOTEBOOK and "not opened" in by_id["dave-2"].refused
    assert "symbolic link" in by_id["mallory"].refused
    assert "not named" in by_id["notes"].refused
    assert "size limit" in by_id["zed"].refused
    assert all(s.path is None or s.path.parent == tmp_path / "unpacked" for s in found)


def test_the_cache_key_follows_everything_an_execution_depends_on(tmp_path):
    limits = Limits(threads=1)
    plan = Plan(ASSIGNMENT, tmp_path, tmp_path, limits, kernel_environment("quick", limits))
    same = Plan(ASSIGNMENT, tmp_path / "elsewhere", tmp_path, limits, kernel_environment("quick", limits))
    assert plan.key("a") == same.key("a") != plan.key("b")
    changed = [replace(plan, limits=replace(limits, cell_seconds=41)),
               replace(plan, environment=kernel_environment("full", limits)),
               replace(plan, sandboxed=False), replace(plan, cgroup=False), replace(plan, assignment="02-cnn")]
    assert len({plan.key("a"), *(p.key("a") for p in changed)}) == 1 + len(changed)


def test_a_generated_course_is_reused_only_for_the_same_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "COURSES", tmp_path / "cache")
    generated = []
    real = grading.nbgrader
    monkeypatch.setattr(grading, "nbgrader", lambda *a, **k: (generated.append(a), real(*a, **k)))

    def course(name: str) -> dict[str, bytes]:
        grading.write_course(tmp_path / name / "course", ASSIGNMENT, tmp_path / name / "runs")
        made = tmp_path / name / "course"
        return {p.relative_to(made).as_posix(): p.read_bytes() for p in sorted(made.rglob("*"))
                if p.is_file() and p.name != "nbgrader_config.py"}

    first = course("first")
    assert len(generated) == 1 and "gradebook.db" in first and f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in first
    assert course("second") == first and len(generated) == 1, "the same inputs: copied, not generated again"
    monkeypatch.setenv("WORKSHOP_COURSE_ID", "another-course")
    course("third")
    assert len(generated) == 2, "another course id: generated again"


def test_the_profile_comes_from_the_grader_not_its_shell(monkeypatch):
    monkeypatch.setenv("WORKSHOP_PROFILE", "full")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    environment = kernel_environment("quick", Limits(threads=1))
    assert environment["WORKSHOP_PROFILE"] == "quick" and environment["KERAS_BACKEND"] == "torch"
    assert "AWS_SECRET_ACCESS_KEY" not in environment


def test_a_failure_of_the_tool_is_tried_again_and_never_kept(tmp_path, monkeypatch):
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "alice.ipynb").write_bytes(NOTEBOOK)
    calls = tmp_path / "calls"  # written by the worker processes

    def broken(plan, submission, stop_after=""):
        with open(calls, "a") as f:
            f.write(submission.student + "\n")
        raise OSError("the machine was busy")

    monkeypatch.setattr(grading, "_execute", broken)  # worker processes fork from this one, patch included
    unsandboxed = Confinement.none("test")
    results = grade(ASSIGNMENT, tmp_path / "class", tmp_path / "out", workers=1, progress=False,
                    confinement=unsandboxed)
    assert results[0].outcome == "crashed" and results[0].transient and "attempt 2 of 2" in results[0].detail
    assert not (tmp_path / "out" / "runs" / "alice.json").exists()

    def refused(plan, submission, stop_after=""):
        with open(calls, "a") as f:
            f.write(submission.student + "\n")
        return Result(submission.student, "x", outcome="malformed notebook", detail="stand-in")

    monkeypatch.setattr(grading, "_execute", refused)
    again = grade(ASSIGNMENT, tmp_path / "class", tmp_path / "out", workers=1, progress=False,
                  confinement=unsandboxed)
    assert again[0].outcome == "malformed notebook"
    assert json.loads((tmp_path / "out" / "runs" / "alice.json").read_text())["outcome"] == "malformed notebook"
    alice = [name for name in calls.read_text().split() if name == "alice"]  # the solution's run is also there
    assert alice == ["alice"] * 3  # twice in the first run, once more in the second
