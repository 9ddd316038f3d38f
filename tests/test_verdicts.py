"""The hidden checks' boundary (workshop.grading, grader.verdicts): plain data only, checks that never enter the
kernel, and verdicts that fail closed."""

import ast
import json
import math

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from grader.grade import LoadExecuted
from grader.release import SOLUTIONS, assignments
from grader.verdicts import collect, hidden, probe_cells, verdict, without_hidden
from workshop.grading import MIME, Malformed, decode, encode, hidden_checks, run_probe, trusted


def test_plain_data_survives_the_trip():
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x", None, True],
             "c": (np.int64(3), np.array([True, False])), "d": torch.ones(2, dtype=torch.float64), 7: np.uint8(5)}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], value["a"])
    assert back["b"] == [1, 2.5, "x", None, True] and back["c"][0] == 3 and back["c"][1].dtype == bool
    assert np.array_equal(back["d"], np.ones(2)) and back["7"] == 5


@pytest.mark.parametrize("forged", [
    {"__array__": "object", "shape": [1], "data": ""},
    {"__array__": "float64", "shape": [2], "data": "AAAAAAAAAAA="},  # one float for a shape of two
    {"__array__": "float64", "shape": [1], "data": "not base64!"},
    {"__array__": "float64", "shape": "1", "data": ""},
    {"__array__": "float64", "shape": [1], "data": "AAAAAAAAAAA=", "extra": 1},
    json.loads("[" * 40 + "]" * 40),
])
def test_anything_but_plain_data_is_refused(forged):
    with pytest.raises(Malformed):
        decode(forged)


def test_a_probe_that_returns_an_object_or_raises_reports_why():
    assert "not Linear" in run_probe(lambda: torch.nn.Linear(1, 1))["error"]
    assert "ZeroDivisionError" in run_probe(lambda: 1 / 0)["error"]
    assert "NotImplementedError" in run_probe(lambda: (_ for _ in ()).throw(NotImplementedError()))["error"]


NOTEBOOK_NAME = 1.0  # a global of the notebook's, which a check must not see


def leans_on_the_notebook(got, want):
    assert NOTEBOOK_NAME


def test_a_check_in_the_notebook_sees_only_the_trusted_names():
    def wrong(got, want):
        check_close(got["x"] + 1, want["x"])  # noqa: F821 - check_close comes from the trusted globals

    hidden_checks(lambda: {"x": np.ones(3)}, lambda got, want: check_close(got["x"], want["x"]))  # noqa: F821
    with pytest.raises(NameError):
        hidden_checks(lambda: {"x": 1}, leans_on_the_notebook)
    with pytest.raises(AssertionError):
        hidden_checks(lambda: {"x": np.ones(3)}, wrong)


@pytest.mark.parametrize("assignment", assignments())
def test_every_test_cell_has_a_probe_and_no_check_enters_the_kernel(assignment):
    source = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    found = hidden(source)
    graded = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")
              and not c.metadata["nbgrader"].get("solution")]
    assert [h.grade_id for h in found] == [c.metadata["nbgrader"]["grade_id"] for c in graded]
    for cell, h in zip(probe_cells(found), found, strict=True):  # the probe and the call that shows its data
        tree = ast.parse(cell.source)
        assert [type(n) for n in tree.body] == [ast.FunctionDef, ast.Expr] and tree.body[0].name == "probe"
        assert "def check(" not in cell.source and h.check not in cell.source
    assert not any("def check(" in without_hidden(c.source) for c in source.cells), "a check in a visible part"


def test_a_hidden_part_in_another_form_is_refused():
    cell = new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS\n",
                         metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 1}})
    with pytest.raises(ValueError, match="def probe"):
        hidden(new_notebook(cells=[cell]))


def _passes(got, want):
    check_close(got["x"], want["x"])  # noqa: F821


def test_verdicts_fail_closed():
    check = trusted(_passes)
    want = {"data": encode({"x": np.ones(3)})}
    assert verdict(check, want, want) == (True, "")
    assert verdict(check, None, want)[0] is False
    assert "NameError" in verdict(check, {"error": "NameError: forward"}, want)[1]
    assert "malformed" in verdict(check, {"data": {"x": {"__array__": "object", "shape": [], "data": ""}}}, want)[1]
    assert verdict(check, {"data": {"x": [1.0, 1.0, 1.0]}}, want)[0] is False  # a list is not the array asked for
    assert verdict(check, {"data": encode({"x": np.ones(3) + 1e-3})}, want)[0] is False


def test_a_check_that_hangs_fails(monkeypatch):
    monkeypatch.setattr("grader.verdicts.CHECK_SECONDS", 1)

    def forever(got, want):
        while True:
            math.sqrt(2)

    assert "over 1 s" in verdict(forever, {"data": 1}, {"data": 1})[1]


def _probe_cell(grade_id, *outputs):
    cell = probe_cells([type("H", (), {"grade_id": grade_id, "probe": "def probe():\n    return 1"})()])[0]
    cell.outputs = list(outputs)
    return cell


def _shown(payload):
    return new_output("display_data", data={MIME: payload})


def test_only_each_probe_cells_own_first_display_counts():
    nb = new_notebook(cells=[
        new_code_cell("x = 1"),
        _probe_cell("a", _shown({"grade_id": "a", "data": 1}), _shown({"grade_id": "a", "data": 2})),
        _probe_cell("b", _shown({"grade_id": "a", "data": 3})),  # a display claiming another test's name
        _probe_cell("c", new_output("error", ename="NameError", evalue="probe", traceback=[])),
        _probe_cell("d"),
    ])
    found = collect(nb)
    assert found["a"] == {"data": 1} and "nothing" in found["b"]["error"] and "NameError" in found["c"]["error"]
    assert "nothing" in found["d"]["error"] and [c.source for c in nb.cells] == ["x = 1"]


def test_the_verdict_alone_scores_a_test_cell(tmp_path):
    meta = {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "t-test", "points": 2,
                         "schema_version": 3}}
    faked = [new_output("execute_result", data={"text/plain": "'passed'"}, execution_count=1),
             new_output("stream", name="stdout", text="all visible tests pass\n")]

    def graded(verdicts, outputs):
        run = new_notebook(cells=[new_code_cell("check()\n", metadata=meta, outputs=outputs)])
        nbformat.write(run, tmp_path / "s.ipynb")
        (tmp_path / "s.verdicts.json").write_text(json.dumps(verdicts))
        nb = new_notebook(cells=[new_code_cell("check()\n### BEGIN HIDDEN TESTS\n...\n### END HIDDEN TESTS",
                                               metadata=meta)])
        nb, _ = LoadExecuted(runs=str(tmp_path)).preprocess(nb, {"nbgrader": {"student": "s"}})
        return determine_grade(nb.cells[0])[0], nb.cells[0].outputs

    assert graded({"t-test": [False, "off by 0.1"]}, faked)[0] == 0
    score, outputs = graded({"t-test": [True, ""]}, [new_output("error", ename="E", evalue="", traceback=[])])
    assert score == 2 and [o.output_type for o in outputs] == ["stream"]
    assert graded({}, faked)[0] == 0  # no verdict: no points
