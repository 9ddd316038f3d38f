"""The Validate button's summary (workshop.validate): exercises passing their visible tests, points, what to fix."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from workshop.validate import SummaryValidator, summarise, summary_entry


def graded_cell(grade_id, points, error=None):
    cell = new_code_cell("check()", metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                           "grade_id": grade_id, "points": points,
                                                           "schema_version": 3}})
    if error:
        cell.outputs = [new_output("error", ename="CheckFailed", evalue=error, traceback=["frames", error])]
    return cell


def notebook(*cells):
    answer = new_code_cell("x = 1", metadata={"nbgrader": {"grade": False, "solution": True, "locked": False,
                                                           "grade_id": "forward", "schema_version": 3}})
    return new_notebook(cells=[answer, *cells])


def test_the_summary_counts_exercises_points_and_names_the_first_failure():
    nb = notebook(graded_cell("forward-test", 2), graded_cell("backward-test", 3, "backward() is not implemented yet"),
                  graded_cell("backward-test-2", 1), graded_cell("adam-test", 4, "m is off by 0.1"))
    found = summarise(nb)
    assert found == {"exercises": 3, "passing": ["forward"], "total": 10.0, "points": 2.0,
                     "failing": {"backward": "CheckFailed: backward() is not implemented yet",
                                 "adam": "CheckFailed: m is off by 0.1"}}
    entry = summary_entry(found)
    assert entry["source"].startswith("Summary: 1 of 3 exercises pass their visible tests: 2 of 10 points")
    assert "Fix first: backward. CheckFailed: backward() is not implemented yet" in entry["raw_error"]
    assert "Still failing after it: adam." in entry["raw_error"] and "frames" not in entry["raw_error"]


def test_the_summary_escapes_what_the_notebook_printed():
    entry = summary_entry(summarise(notebook(graded_cell("forward-test", 1, "<img src=x onerror=alert(1)>"))))
    assert "<img" not in entry["error"] and "&lt;img" in entry["error"]


def test_validate_puts_the_summary_first_and_keeps_nbgraders_failures(tmp_path):
    nb = notebook(new_code_cell("def check(ok):\n    assert ok, 'not yet'"),
                  new_code_cell("check(True)", metadata=graded_cell("forward-test", 2).metadata),
                  new_code_cell("check(False)", metadata=graded_cell("backward-test", 3).metadata))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)
    failed = SummaryValidator().validate(str(path))["failed"]
    assert failed[0]["source"].startswith("Summary: 1 of 2 exercises pass their visible tests: 2 of 5 points")
    assert "Fix first: backward. AssertionError: not yet" in failed[0]["raw_error"]
    assert [f["source"] for f in failed[1:]] == ["check(False)"]
